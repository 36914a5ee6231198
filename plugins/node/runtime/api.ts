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
