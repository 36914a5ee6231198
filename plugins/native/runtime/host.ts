/**
 * The native worker host: `node host.js` in the app's directory, with the COCAINE_* environment
 * (docs/worker-protocol.md). Starts the app thread (app-thread.ts), which loads the app's shared
 * object (COCAINE_ENTRYPOINT) through koffi, checks its ABI and runs cocaine_init; then handshakes
 * with concurrency 1 and hands each invocation to the app thread while this thread heartbeats.
 *
 * No signal handlers are installed: a crash in the app (SIGSEGV, abort) ends this process with
 * that signal, which the engine reports as the reason the call failed.
 */
import type { Socket } from 'node:net';
import { FrameDecoder, FrameType, WORKER_CHANNEL_BASE, type HandshakePayload, type LogLevel, type LogPayload } from '../../../engine/protocol/frames.js';
import { keepAlive, leave } from '../../../engine/protocol/liveness.js';
import { connectToEngine, dieBeforeHandshake, readWorkerEnv, type WorkerEnv } from '../../../engine/protocol/worker-env.js';
import { Dispatcher } from './dispatcher.js';
import { ServiceChannels } from './service-channels.js';
import { AppLoadError, startAppThread, type HostedApp, type ServiceHooks } from './app-client.js';
import { NATIVE_ABI_VERSION } from './app-protocol.js';
import { Wire } from '../../../engine/protocol/wire.js';

function die(message: string): never {
  dieBeforeHandshake('cocaine native runtime', message);
}

function readEnv(env: NodeJS.ProcessEnv): WorkerEnv {
  return readWorkerEnv(env, 'cocaine native runtime');
}

/** The protocol this worker speaks: 2 (services) when the engine does, else 1. */
function protocolOf(env: NodeJS.ProcessEnv): 1 | 2 {
  return Number(env.COCAINE_PROTOCOL) >= 2 ? 2 : 1;
}

function run(
  env: WorkerEnv,
  protocol: number,
  socket: Socket,
  wire: Wire,
  dispatcher: Dispatcher,
  services: ServiceChannels,
  app: HostedApp,
  events: string[] | undefined,
): void {
  const decoder = new FrameDecoder();
  const heard = keepAlive('cocaine native runtime', env, socket, () => wire.send(FrameType.HEARTBEAT, 0));
  let terminating = false;

  const terminate = async (): Promise<void> => {
    if (terminating) return;
    terminating = true;
    await dispatcher.drain();
    try {
      await app.shutdown();
    } catch (error) {
      process.stderr.write(`cocaine native runtime: cocaine_shutdown failed: ${(error as Error).message}\n`);
    }
    wire.flush();
    socket.end(() => leave(0));
    setTimeout(() => leave(0), 1000).unref();
  };

  socket.on('data', (data: Buffer) => {
    heard();
    try {
      decoder.push(data, (frame) => {
        if (frame.channel >= WORKER_CHANNEL_BASE) services.onFrame(frame);
        else if (frame.channel !== 0) dispatcher.onFrame(frame);
        else if (frame.type === FrameType.TERMINATE) void terminate();
        // HEARTBEAT: any frame counts as a sign of life; unknown control frames are ignored.
      });
    } catch (error) {
      die(`protocol error from the engine: ${(error as Error).message}`);
    }
  });

  const handshake: HandshakePayload = {
    protocol,
    worker: env.workerId,
    pid: process.pid,
    runtime: `native abi ${NATIVE_ABI_VERSION} (node ${process.versions.node})`,
    concurrency: 1,
    ...(events ? { events } : {}),
  };
  wire.send(FrameType.HANDSHAKE, 0, Buffer.from(JSON.stringify(handshake)));
  wire.flush();
}

const env = readEnv(process.env);
const { socket, connected } = connectToEngine(env.endpoint);

const protocol = protocolOf(process.env);
const wire = new Wire(socket);
let app: HostedApp;
const services = new ServiceChannels(wire, (answer) => app.answerService(answer), (parent) => dispatcher.isLive(parent));
const dispatcher = new Dispatcher(wire, (channel) => services.cancelParent(channel));
// The app is loaded while the socket connects, and before the handshake: a broken app fails here.
let events: string[] | undefined;
try {
  const hooks: ServiceHooks = {
    onService: (request) => services.request(request),
    onLog: ({ channel, level, message, fields }) => {
      // A cancelled or finished invocation's channel takes nothing more: the record goes unattached.
      // The level was checked on the app thread (service-table.ts).
      const record: LogPayload = { level: level as LogLevel, message, ...(fields ? { fields } : {}) };
      wire.send(FrameType.LOG, channel !== 0 && dispatcher.isLive(channel) ? channel : 0, Buffer.from(JSON.stringify(record)));
    },
  };
  const failed = (message: string) => {
    process.stderr.write(`cocaine native runtime: ${message}\n`);
    leave(1);
  };
  app = await startAppThread(env.entrypoint, env.app, wire, dispatcher.write, failed, protocol >= 2 ? hooks : undefined);
  if (app.refusal !== undefined) die(`${env.entrypoint}: cocaine_init refused to start: ${app.refusal}`);
  events = app.events;
} catch (error) {
  if (error instanceof AppLoadError) die(error.message);
  die(`cannot start ${env.entrypoint}: ${(error as Error).message}`);
}
dispatcher.attach(app);
try {
  await connected;
} catch (error) {
  die(`cannot connect to the engine at ${env.endpoint}: ${(error as Error).message}`);
}
run(env, protocol, socket, wire, dispatcher, services, app, events);
