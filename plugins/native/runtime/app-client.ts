/**
 * The main thread's side of the native host's app thread (app-thread.ts): starts it, turns its
 * calls into promises, receives the chunks the app writes, and releases them (lets a blocked
 * write() go on) once the socket has taken them.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import {
  CANCELLED_CHANNEL,
  CONTROL_SLOTS,
  SERVICE_SIGNAL,
  type AppReply,
  type AppRequest,
  type AppThreadData,
  type ServiceAnswer,
} from './app-protocol.js';
import type { HandleResult } from './library.js';

/** What the host needs of its outgoing side to apply backpressure (engine/protocol/wire.ts's Wire). */
export interface Flow {
  readonly congested: boolean;
  whenDrained(callback: () => void): void;
}

export interface HostedApp {
  /** cocaine_init's refusal, if it refused (the host then exits before the handshake). */
  readonly refusal: string | undefined;
  /** cocaine_events(), split; undefined when not exported. */
  readonly events: string[] | undefined;
  /** `misuse`: what the app did wrong with write(), which fails the call whatever it returned. */
  handle(event: string, headersJson: string, body: Buffer, channel: number): Promise<HandleResult & { misuse?: string }>;
  shutdown(): Promise<void>;
  /** The running call's next (or blocked) write() or service call returns COCAINE_CANCELLED. */
  cancel(channel: number): void;
  /** Hands a service request's answer to the app thread, blocked waiting for it. */
  answerService(answer: ServiceAnswer): void;
}

/** Services (protocol 2): the app thread's requests and log records, on the main thread. */
export interface ServiceHooks {
  onService(request: Extract<AppReply, { type: 'service' }>): void;
  onLog(record: Extract<AppReply, { type: 'log' }>): void;
}

/** The app could not be loaded: the host prints the message and exits 1 before the handshake. */
export class AppLoadError extends Error {}

type Pending = { resolve: (value: unknown) => void; reject: (error: Error) => void };
type Request = AppRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/**
 * Starts the app thread on `entrypoint`; resolves once the shared object is loaded and checked
 * and cocaine_init has run.
 * `onChunk` receives each chunk the app writes, on the main thread, in order.
 */
export function startAppThread(
  entrypoint: string,
  appName: string,
  flow: Flow,
  onChunk: (channel: number, data: Buffer) => void,
  onFailure: (message: string) => void,
  services?: ServiceHooks,
): Promise<HostedApp> {
  const control = new SharedArrayBuffer(4 * CONTROL_SLOTS);
  const released = new SharedArrayBuffer(8);
  const cancelled = new Int32Array(control);
  const releasedBytes = new BigInt64Array(released);
  // Answers go on a port of their own: the app thread reads it synchronously while it blocks.
  const replies = services ? new MessageChannel() : undefined;
  const data: AppThreadData = { entrypoint, app: appName, control, released, ...(replies ? { replies: replies.port2 } : {}) };
  const thread = new Worker(new URL('./app-thread.js', import.meta.url), {
    workerData: data,
    transferList: replies ? [replies.port2] : [],
  });
  const signal = (): void => {
    Atomics.add(cancelled, SERVICE_SIGNAL, 1);
    Atomics.notify(cancelled, SERVICE_SIGNAL);
  };
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let loaded = false;

  const release = (bytes: number) => (): void => {
    Atomics.add(releasedBytes, 0, BigInt(bytes));
    Atomics.notify(releasedBytes, 0);
  };

  const call = <T>(request: Request): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      thread.postMessage({ ...request, id } as AppRequest);
    });

  const app: HostedApp = {
    refusal: undefined,
    events: undefined,
    handle: (event, headersJson, body, channel) => {
      // A new call: whatever channel was cancelled before is not this one.
      Atomics.store(cancelled, CANCELLED_CHANNEL, 0);
      return call({ type: 'handle', event, headersJson, body, channel });
    },
    shutdown: () => call({ type: 'shutdown' }),
    cancel: (channel) => {
      Atomics.store(cancelled, CANCELLED_CHANNEL, channel);
      Atomics.notify(releasedBytes, 0);
      signal();
    },
    answerService: (answer) => {
      // Copied, not transferred: the body may be a view of a pooled buffer.
      replies?.port1.postMessage(answer);
      signal();
    },
  };

  return new Promise<HostedApp>((resolve, reject) => {
    thread.on('message', (message: AppReply) => {
      switch (message.type) {
        case 'chunk': {
          const chunk = Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength);
          onChunk(message.channel, chunk);
          const done = release(chunk.length);
          if (flow.congested) flow.whenDrained(done);
          else done();
          return;
        }
        case 'service':
          services?.onService(message);
          return;
        case 'log':
          services?.onLog(message);
          return;
        case 'loaded':
          loaded = true;
          resolve({ ...app, refusal: message.refusal, events: message.events });
          return;
        case 'load-failed':
          reject(message.broken ? new AppLoadError(message.message) : new Error(message.message));
          return;
        case 'result':
        case 'failed': {
          const waiter = pending.get(message.id);
          pending.delete(message.id);
          if (message.type === 'result') waiter?.resolve(message.value);
          else waiter?.reject(new Error(message.message));
          return;
        }
      }
    });
    thread.on('error', (error) => {
      if (!loaded) reject(error);
      else onFailure(`the app thread failed: ${error.message}`);
    });
    thread.on('exit', (code) => {
      if (!loaded) reject(new Error(`the app thread exited with code ${code} before the app was loaded`));
      else onFailure(`the app thread exited with code ${code}`);
    });
  });
}
