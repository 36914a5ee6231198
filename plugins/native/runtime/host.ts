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
import { FrameDecoder, FrameType, PROTOCOL_VERSION, type HandshakePayload } from '../../../engine/protocol/frames.js';
import { keepAlive, leave } from '../../../engine/protocol/liveness.js';
import { connectToEngine, dieBeforeHandshake, readWorkerEnv, type WorkerEnv } from '../../../engine/protocol/worker-env.js';
import { Dispatcher } from './dispatcher.js';
import { AppLoadError, startAppThread, type HostedApp } from './app-client.js';
import { NATIVE_ABI_VERSION } from './app-protocol.js';
import { Wire } from './wire.js';

function die(message: string): never {
  dieBeforeHandshake('cocaine native runtime', message);
}

function readEnv(env: NodeJS.ProcessEnv): WorkerEnv {
  return readWorkerEnv(env, 'cocaine native runtime');
}

function run(env: WorkerEnv, socket: Socket, wire: Wire, dispatcher: Dispatcher, app: HostedApp, events: string[] | undefined): void {
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
        if (frame.channel !== 0) dispatcher.onFrame(frame);
        else if (frame.type === FrameType.TERMINATE) void terminate();
        // HEARTBEAT: any frame counts as a sign of life; unknown control frames are ignored.
      });
    } catch (error) {
      die(`protocol error from the engine: ${(error as Error).message}`);
    }
  });

  const handshake: HandshakePayload = {
    protocol: PROTOCOL_VERSION,
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

const wire = new Wire(socket);
const dispatcher = new Dispatcher(wire);
// The app is loaded while the socket connects, and before the handshake: a broken app fails here.
let app: HostedApp;
let events: string[] | undefined;
try {
  app = await startAppThread(env.entrypoint, env.app, wire, dispatcher.write, (message) => {
    process.stderr.write(`cocaine native runtime: ${message}\n`);
    leave(1);
  });
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
run(env, socket, wire, dispatcher, app, events);
