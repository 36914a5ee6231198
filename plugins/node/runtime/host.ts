/**
 * The Node worker entry: `node host.js` in the app's directory, with the COCAINE_* environment
 * (docs/worker-protocol.md). Imports nothing heavy: a worker's cold start is node's own start plus
 * the app's import.
 */
import type { Socket } from 'node:net';
import { FrameDecoder, FrameType, PROTOCOL_VERSION } from '../../../engine/protocol/frames.js';
import { keepAlive, leave } from '../../../engine/protocol/liveness.js';
import { connectToEngine, dieBeforeHandshake, readWorkerEnv, type WorkerEnv } from '../../../engine/protocol/worker-env.js';
import { Dispatcher } from './dispatcher.js';
import { Services } from './services.js';
import { loadHandlers, type BoundHandler } from './handlers.js';
import { Wire } from '../../../engine/protocol/wire.js';

function die(message: string): never {
  dieBeforeHandshake('cocaine node runtime', message);
}

const readEnv = (env: NodeJS.ProcessEnv): WorkerEnv => readWorkerEnv(env, 'cocaine node runtime');

function run(env: WorkerEnv, socket: Socket, handlers: Map<string, BoundHandler>): void {
  const wire = new Wire(socket);
  // Version 2 (services) when the engine speaks it; an older engine gets a version-1 worker.
  const protocol = Math.min(PROTOCOL_VERSION, env.protocol);
  const dispatcher = new Dispatcher(wire, handlers, new Services(wire, protocol));
  const decoder = new FrameDecoder();
  const heard = keepAlive('cocaine node runtime', env, socket, () => wire.send(FrameType.HEARTBEAT, 0));

  const onControl = (type: number): void => {
    if (type === FrameType.TERMINATE) {
      wire.flush();
      socket.end(() => leave(0));
      setTimeout(() => leave(0), 1000).unref();
    }
    // HEARTBEAT: any frame already counts as a sign of life; unknown control frames are ignored.
  };

  socket.on('data', (data: Buffer) => {
    heard();
    try {
      decoder.push(data, (frame) => {
        if (frame.channel === 0) onControl(frame.type);
        else dispatcher.onFrame(frame);
      });
    } catch (error) {
      die(`protocol error from the engine: ${(error as Error).message}`);
    }
    dispatcher.startPending();
  });

  const handshake = {
    protocol,
    worker: env.workerId,
    pid: process.pid,
    runtime: `node ${process.versions.node}`,
    concurrency: 0,
    events: [...handlers.keys()],
  };
  wire.send(FrameType.HANDSHAKE, 0, Buffer.from(JSON.stringify(handshake)));
  wire.flush();
}

const env = readEnv(process.env);
const { socket, connected } = connectToEngine(env.endpoint);

// The app is loaded while the socket connects, and before the handshake: a broken app fails here.
let handlers: Map<string, BoundHandler>;
try {
  handlers = await loadHandlers(env.entrypoint);
} catch (error) {
  process.stderr.write(`cocaine node runtime: cannot load the entrypoint ${env.entrypoint}\n`);
  // Rethrown uncaught: node prints it with the file:line of a syntax error, and exits with 1.
  throw error;
}
try {
  await connected;
} catch (error) {
  die(`cannot connect to the engine at ${env.endpoint}: ${(error as Error).message}`);
}
run(env, socket, handlers);
