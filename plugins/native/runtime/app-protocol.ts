/**
 * Messages between the native host's main thread (app-client.ts) and its app thread
 * (app-thread.ts), and the ABI's constants the main thread needs (without loading koffi).
 */
import type { MessagePort } from 'node:worker_threads';

export const NATIVE_ABI_VERSION = 1;
export const HANDLER_OK = 0;
export const HANDLER_NOT_FOUND = 1;
export const WRITE_OK = 0;
export const WRITE_CANCELLED = 1;

/** Bytes the app may have written ahead of the socket before its write() blocks. */
export const FLOW_WINDOW = 1024n * 1024n;
/** Index in the control Int32Array: the channel of a cancelled call (0: none). */
export const CANCELLED_CHANNEL = 0;
/** Index in the control Int32Array: bumped (and notified) on each service answer and each cancel. */
export const SERVICE_SIGNAL = 1;
/** Int32s in the control SharedArrayBuffer. */
export const CONTROL_SLOTS = 2;

/** A service request's outcome, as the main thread answers it on the replies port. */
export type ServiceAnswer =
  | { id: number; body: Uint8Array }
  | { id: number; error: { code: string; message: string } };

export interface AppThreadData {
  entrypoint: string;
  /** The app's name, for cocaine_init (run as soon as the shared object is loaded). */
  app: string;
  /** SharedArrayBuffer of CONTROL_SLOTS Int32s: the cancelled channel, the service signal. */
  control: SharedArrayBuffer;
  /** Services (protocol 2): the port the main thread answers service requests on; absent = no services. */
  replies?: MessagePort;
  /** SharedArrayBuffer of one BigInt64: bytes the main thread has handed to the socket. */
  released: SharedArrayBuffer;
}

export type AppRequest =
  | { type: 'handle'; id: number; channel: number; event: string; headersJson: string; body: Uint8Array }
  | { type: 'shutdown'; id: number };

export type AppReply =
  /** Loaded and checked; cocaine_init's refusal if any, else cocaine_events(). */
  | { type: 'loaded'; refusal?: string; events?: string[] }
  | { type: 'load-failed'; message: string; broken: boolean }
  | { type: 'chunk'; channel: number; data: Uint8Array }
  /** A service request for the invocation on `parent` (0: none); answered on the replies port. */
  | { type: 'service'; id: number; parent: number; service: string; args: Record<string, unknown>; body: Uint8Array }
  | { type: 'log'; channel: number; level: string; message: string; fields?: Record<string, unknown> }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'failed'; id: number; message: string };
