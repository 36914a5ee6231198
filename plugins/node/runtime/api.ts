/**
 * The API an app's entrypoint sees (types only; see plugins/node/README.md).
 *
 *   export async function echo(request) { return request.body(); }
 *   export default { ping() { return 'pong'; } };
 */

/** One invocation of an event. Async-iterable over the request body's chunks as they arrive. */
export interface Request extends AsyncIterable<Buffer> {
  readonly event: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Absolute deadline in epoch ms, 0 when none (the engine enforces it and then aborts `signal`). */
  readonly deadline: number;
  /**
   * Aborted when the call is cancelled (`signal.reason.code === 'cancelled'`) or its deadline
   * passed (`'deadline'`). After that nothing the handler returns is sent.
   */
  readonly signal: AbortSignal;
  /** The whole body once the engine closed it. Use either this or iteration, not both. */
  body(): Promise<Buffer>;
  text(): Promise<string>;
  json<T = unknown>(): Promise<T>;

  // Services (protocol version 2): failures reject with a ServiceError carrying the engine's `code`;
  // everything open is cancelled when `signal` aborts.

  /** Calls `app@event` through the engine; the answer streams (iterate it) or comes whole (`body()`). */
  call(target: string, body?: ServiceBody, options?: CallOptions): CallResult;
  /** Queues a fire-and-forget event; resolves once it is durably queued. */
  emit(target: string, body?: ServiceBody, options?: EmitOptions): Promise<EmitResult>;
  /** The app's own key-value store (docs/app-store.md). */
  readonly storage: Storage;
  /** Structured records into the app's logs, with the event and trace id of this call. */
  readonly log: Log;
}

/** A service request's body: whole, or streamed from an (async) iterable of chunks. */
export type ServiceBody = Chunk | AsyncIterable<Chunk> | Iterable<Chunk>;

export interface CallOptions {
  headers?: Record<string, string>;
  /** The callee's timeout; the call's deadline is the sooner of it and this invocation's. */
  timeoutMs?: number;
}

export interface EmitOptions {
  headers?: Record<string, string>;
  delayMs?: number;
  /** Explicit event id; default: `<this event's id>.<k>` under a queued event, else a fresh one. */
  id?: string;
}

export interface EmitResult {
  id: string;
  duplicate: boolean;
}

/** The callee's result: an async iterable of its chunks, or whole. Read it once. */
export interface CallResult extends AsyncIterable<Buffer> {
  body(): Promise<Buffer>;
  text(): Promise<string>;
  json<T = unknown>(): Promise<T>;
}

export interface Storage {
  get(key: string): Promise<{ value: Buffer; revision: number } | undefined>;
  /** `revision`: compare-and-set (0 = the key must not exist). Resolves to the new revision. */
  put(key: string, value: Buffer | Uint8Array | string, options?: { revision?: number }): Promise<number>;
  delete(key: string, options?: { revision?: number }): Promise<boolean>;
  list(prefix?: string, options?: { limit?: number; after?: string }): Promise<{ keys: string[]; next?: string }>;
}

/** What a failed service request rejects with (class in services.ts; `name` is 'ServiceError'). */
export interface ServiceError extends Error {
  readonly name: 'ServiceError';
  /** The engine's error code (docs/errors.md), `cancelled`, or `unsupported` under a version-1 engine. */
  readonly code: string;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Log {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/** One piece of a streamed result. */
export type Chunk = Buffer | Uint8Array | string;

/**
 * What a handler may return (or resolve to):
 * - `Buffer` / `Uint8Array` / `string`: the result, one chunk;
 * - `undefined` / `null`: an empty result;
 * - an async iterable, a generator or any other non-array iterable of chunks: streamed, one
 *   CHUNK frame per item, in order, with backpressure;
 * - anything else (plain object, array, number, boolean): sent as JSON.
 */
export type HandlerResult =
  | Chunk
  | undefined
  | null
  | AsyncIterable<Chunk>
  | Iterable<Chunk>
  | Record<string, unknown>
  | unknown[]
  | number
  | boolean;

export type Handler = (request: Request) => HandlerResult | Promise<HandlerResult>;

/** The shape of an entrypoint module: named handler exports and/or a default object of handlers. */
export interface AppModule {
  default?: Record<string, Handler>;
  [event: string]: Handler | Record<string, Handler> | undefined;
}
