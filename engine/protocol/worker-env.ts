/**
 * What the engine tells a worker through its environment (docs/worker-protocol.md, "Start-up"),
 * read and checked once. Shared by the Node-based runtimes; imports nothing but node:net and frames.ts. The liveness
 * rules (heartbeats, disown, exit) are in liveness.ts.
 */
import { connect, type Socket } from 'node:net';
import { PROTOCOL_VERSION } from './frames.js';

export interface WorkerEnv {
  app: string;
  workerId: string;
  endpoint: string;
  entrypoint: string;
  heartbeatMs: number;
  disownMs: number;
  /** COCAINE_PROTOCOL: the highest protocol version the engine speaks (services need 2). */
  protocol: number;
}

/** Prints `<runtime>: message` on stderr and exits 1 (before the handshake the engine reports it). */
export function dieBeforeHandshake(runtime: string, message: string): never {
  process.stderr.write(`${runtime}: ${message}\n`);
  process.exit(1);
}

export function readWorkerEnv(env: NodeJS.ProcessEnv, runtime: string): WorkerEnv {
  const required = (name: string): string => {
    const value = env[name];
    if (!value) dieBeforeHandshake(runtime, `${name} is not set: this program is started by the cocaine engine`);
    return value;
  };
  const milliseconds = (name: string): number => {
    const value = Number(required(name));
    if (!Number.isFinite(value) || value <= 0) dieBeforeHandshake(runtime, `${name} must be a positive number of milliseconds, got '${env[name]}'`);
    return value;
  };
  // COCAINE_PROTOCOL is the highest version the engine speaks; every engine serves version 1.
  const protocol = required('COCAINE_PROTOCOL');
  if (!/^[1-9][0-9]*$/.test(protocol)) dieBeforeHandshake(runtime, `COCAINE_PROTOCOL is ${protocol}; this runtime speaks ${PROTOCOL_VERSION}`);
  return {
    app: env.COCAINE_APP ?? '',
    workerId: required('COCAINE_WORKER_ID'),
    endpoint: required('COCAINE_ENDPOINT'),
    entrypoint: required('COCAINE_ENTRYPOINT'),
    heartbeatMs: milliseconds('COCAINE_HEARTBEAT_MS'),
    disownMs: milliseconds('COCAINE_DISOWN_MS'),
    protocol: Number(protocol),
  };
}

/**
 * Starts connecting to the engine's socket at once (the app loads meanwhile); `connected` settles
 * when the connection is up or has failed, and never counts as an unhandled rejection.
 */
export function connectToEngine(endpoint: string): { socket: Socket; connected: Promise<void> } {
  const socket = connect(endpoint);
  socket.setNoDelay(true);
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  connected.catch(() => {});
  return { socket, connected };
}
