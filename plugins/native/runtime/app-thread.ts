/**
 * The app thread of the native host: loads the shared object and makes every call into it,
 * synchronously, one at a time, on this one thread (app-client.ts is the main thread's side).
 *
 * The app's write() runs here too: each chunk is copied and posted to the main thread, and when
 * more than FLOW_WINDOW bytes are posted but not yet taken by the socket, write() blocks (in
 * Atomics.wait) until the engine reads, or the call is cancelled. So a handler that produces
 * faster than the engine reads is slowed down instead of growing the worker's memory.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import {
  CANCELLED_CHANNEL,
  FLOW_WINDOW,
  SERVICE_SIGNAL,
  WRITE_CANCELLED,
  WRITE_OK,
  type AppReply,
  type AppRequest,
  type AppThreadData,
  type ServiceAnswer,
} from './app-protocol.js';
import { NativeLoadError, loadNativeApp, type NativeApp } from './library.js';
import { createServiceTable, type ServiceOutcome, type ServiceTable, type ServiceTransport } from './service-table.js';

const port = parentPort!;
const { entrypoint, app: appName, control, released, replies } = workerData as AppThreadData;
const cancelled = new Int32Array(control);
const releasedBytes = new BigInt64Array(released);

let current = 0;
let posted = 0n;
let misuse: string | undefined;

function isCancelled(): boolean {
  return Atomics.load(cancelled, CANCELLED_CHANNEL) === current;
}

function write(ctx: number, data: Uint8Array | undefined, problem?: string): number {
  if (current === 0 || ctx !== current || misuse !== undefined || isCancelled()) return WRITE_CANCELLED;
  if (problem !== undefined) {
    // Only this call fails; the app is told to stop, as on a cancel.
    misuse = problem;
    return WRITE_CANCELLED;
  }
  if (!data) return WRITE_OK;
  // Counted before the transfer, which empties `data`.
  posted += BigInt(data.length);
  port.postMessage({ type: 'chunk', channel: ctx, data } satisfies AppReply, [data.buffer as ArrayBuffer]);
  for (;;) {
    const taken = Atomics.load(releasedBytes, 0);
    if (posted - taken <= FLOW_WINDOW) return WRITE_OK;
    if (isCancelled()) return WRITE_CANCELLED;
    // Woken when the main thread releases bytes or cancels; the timeout only bounds a lost wake.
    Atomics.wait(releasedBytes, 0, taken, 1000);
  }
}

let nextServiceId = 1;

/**
 * Services (cocaine/worker.h): the request goes to the main thread, which does the protocol work;
 * this thread blocks until the answer comes back on the replies port, or the running call is
 * cancelled (the main thread then cancels the service channel itself).
 */
const transport: ServiceTransport = {
  parentOf(ctx) {
    // Not in cocaine_init (the worker has not announced itself yet) nor in cocaine_shutdown.
    if (current === 0) return 'services are available only while cocaine_handle runs';
    if (ctx === current) return current;
    return `ctx ${ctx} is not the running invocation's: pass the ctx cocaine_handle received`;
  },
  request(parent, service, args, body): ServiceOutcome {
    const invocationCancelled = () => parent !== 0 && Atomics.load(cancelled, CANCELLED_CHANNEL) === parent;
    if (invocationCancelled()) return { cancelled: true };
    const id = nextServiceId++;
    port.postMessage({ type: 'service', id, parent, service, args, body } satisfies AppReply, [body.buffer as ArrayBuffer]);
    for (;;) {
      // The signal is read before looking, so an answer or cancel after the look still wakes the wait.
      const signal = Atomics.load(cancelled, SERVICE_SIGNAL);
      for (let received = receiveMessageOnPort(replies!); received; received = receiveMessageOnPort(replies!)) {
        const answer = received.message as ServiceAnswer;
        if (answer.id === id) return answer;
        // An answer to an earlier request this thread stopped waiting for (cancelled): dropped.
      }
      if (invocationCancelled()) return { cancelled: true };
      Atomics.wait(cancelled, SERVICE_SIGNAL, signal, 1000);
    }
  },
  log(parent, level, message, fields) {
    if (parent === 0) {
      // Outside cocaine_handle (init, shutdown): no invocation to attach it to, so the app's output.
      process.stderr.write(`${level}: ${message}${fields ? ` ${JSON.stringify(fields)}` : ''}\n`);
      return;
    }
    reply({ type: 'log', channel: parent, level, message, ...(fields ? { fields } : {}) });
  },
};

function reply(message: AppReply): void {
  port.postMessage(message);
}

let app: NativeApp;
let services: ServiceTable | undefined;
try {
  // Load, bind, init and events in one go: the handshake waits for all of them.
  app = loadNativeApp(entrypoint, write);
  if (replies && app.canBind) {
    services = createServiceTable(transport);
    app.bind(services.address);
  }
  let refusal: string | undefined;
  try {
    refusal = app.init(appName);
  } finally {
    services?.releaseBuffers();
  }
  reply(refusal === undefined ? { type: 'loaded', events: app.events() } : { type: 'loaded', refusal });
} catch (error) {
  reply({ type: 'load-failed', message: (error as Error).message, broken: error instanceof NativeLoadError });
  port.close();
  process.exit(0); // ends this thread only
}

port.on('message', (request: AppRequest) => {
  try {
    switch (request.type) {
      case 'handle': {
        current = request.channel;
        misuse = undefined;
        let result;
        try {
          result = app.handle(request.event, request.headersJson, request.body, request.channel);
        } finally {
          current = 0;
          services?.releaseBuffers();
        }
        reply({ type: 'result', id: request.id, value: { ...result, misuse } });
        return;
      }
      case 'shutdown':
        app.shutdown();
        reply({ type: 'result', id: request.id, value: undefined });
        return;
    }
  } catch (error) {
    reply({ type: 'failed', id: request.id, message: (error as Error).message });
  }
});
