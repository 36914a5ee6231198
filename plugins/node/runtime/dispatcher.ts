import { FrameType, WORKER_CHANNEL_BASE, type Frame } from '../../../engine/protocol/frames.js';
import type { BoundHandler } from './handlers.js';
import { WorkerRequest } from './request.js';
import type { Services } from './services.js';
import type { Wire } from '../../../engine/protocol/wire.js';

interface Invocation {
  channel: number;
  request: WorkerRequest;
  handler: BoundHandler;
  done: boolean;
  iterator?: Iterator<unknown> | AsyncIterator<unknown>;
}

/** Items a sync iterator may produce in one go before the loop yields to I/O (cancel, heartbeats). */
const SYNC_BATCH = 1024;

/**
 * Runs invocations: one per channel, as many at once as the engine opens. Handlers start after the
 * whole socket read is decoded, so a small request's body is usually complete when its handler
 * runs. A handler's sync return is sent without a promise.
 */
export class Dispatcher {
  private readonly open = new Map<number, Invocation>();
  private starting: Invocation[] = [];

  constructor(
    private readonly wire: Wire,
    private readonly handlers: Map<string, BoundHandler>,
    private readonly services?: Services,
  ) {}

  get active(): number {
    return this.open.size;
  }

  readonly onFrame = (frame: Frame): void => {
    const { channel } = frame;
    if (channel >= WORKER_CHANNEL_BASE) {
      this.services?.onFrame(frame);
      return;
    }
    switch (frame.type) {
      case FrameType.CHUNK:
        this.open.get(channel)?.request.push(frame.payload);
        return;
      case FrameType.END:
        this.open.get(channel)?.request.end();
        return;
      case FrameType.INVOKE:
        this.invoke(channel, frame.payload);
        return;
      case FrameType.ERROR:
        this.cancel(channel, frame.payload);
        return;
    }
  };

  /** Starts the handlers of the channels opened by the frames decoded so far. */
  startPending(): void {
    if (this.starting.length === 0) return;
    const starting = this.starting;
    this.starting = [];
    for (const invocation of starting) {
      if (invocation.done) continue;
      let result: unknown;
      try {
        result = invocation.handler.fn.call(invocation.handler.self, invocation.request);
      } catch (error) {
        this.fail(invocation, error);
        continue;
      }
      if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
        (result as PromiseLike<unknown>).then(
          (value) => this.deliverSafely(invocation, value),
          (error) => this.fail(invocation, error),
        );
      } else {
        this.deliverSafely(invocation, result);
      }
    }
  }

  private invoke(channel: number, payload: Buffer): void {
    if (channel === 0 || this.open.has(channel)) return;
    let event: string;
    let headers: Record<string, string>;
    let deadline: number;
    try {
      const parsed = JSON.parse(payload.toString('utf8')) as { event?: unknown; headers?: unknown; deadline?: unknown };
      if (typeof parsed.event !== 'string') throw new Error('INVOKE without an event name');
      event = parsed.event;
      headers = parsed.headers !== null && typeof parsed.headers === 'object' ? (parsed.headers as Record<string, string>) : {};
      deadline = typeof parsed.deadline === 'number' ? parsed.deadline : 0;
    } catch (error) {
      this.sendError(channel, 'protocol', `malformed INVOKE: ${(error as Error).message}`);
      return;
    }
    const handler = this.handlers.get(event);
    if (!handler) {
      this.sendError(channel, 'not_found', `the app has no handler for the event '${event}'`);
      return;
    }
    const invocation: Invocation = { channel, request: new WorkerRequest(event, headers, deadline, channel, this.services), handler, done: false };
    this.open.set(channel, invocation);
    this.starting.push(invocation);
  }

  private cancel(channel: number, payload: Buffer): void {
    const invocation = this.open.get(channel);
    if (!invocation) return;
    let code = 'cancelled';
    try {
      const parsed = JSON.parse(payload.toString('utf8')) as { code?: unknown };
      if (typeof parsed.code === 'string') code = parsed.code;
    } catch {
      // A cancel is a cancel even with a garbled payload.
    }
    this.close(invocation);
    invocation.request.abort(code);
    this.services?.cancelParent(channel, code);
    closeIterator(invocation.iterator);
  }

  /** A result that cannot be sent fails its own call, never the worker (and its other calls). */
  private deliverSafely(invocation: Invocation, value: unknown): void {
    try {
      this.deliver(invocation, value);
    } catch (error) {
      this.fail(invocation, error);
    }
  }

  private deliver(invocation: Invocation, value: unknown): void {
    if (invocation.done) {
      closeIterable(value);
      return;
    }
    const channel = invocation.channel;
    if (value === undefined || value === null) {
      this.finish(invocation);
    } else if (value instanceof Uint8Array) {
      this.wire.sendChunk(channel, toBuffer(value));
      this.finish(invocation);
    } else if (typeof value === 'string') {
      this.wire.sendChunk(channel, Buffer.from(value));
      this.finish(invocation);
    } else if (typeof value === 'object' && !Array.isArray(value) && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      invocation.iterator = (value as AsyncIterable<unknown>)[Symbol.asyncIterator]();
      this.pumpAsync(invocation, invocation.iterator as AsyncIterator<unknown>);
    } else if (typeof value === 'object' && !Array.isArray(value) && typeof (value as Iterable<unknown>)[Symbol.iterator] === 'function') {
      invocation.iterator = (value as Iterable<unknown>)[Symbol.iterator]();
      this.pumpSync(invocation, invocation.iterator as Iterator<unknown>);
    } else if (value instanceof ArrayBuffer) {
      this.wire.sendChunk(channel, Buffer.from(value));
      this.finish(invocation);
    } else {
      let json: string | undefined;
      try {
        json = JSON.stringify(value);
      } catch (error) {
        this.fail(invocation, new Error(`the result (${describe(value)}) cannot be sent as JSON: ${(error as Error).message}`));
        return;
      }
      if (json === undefined) {
        // A function, a symbol, or an object whose toJSON() gives nothing: not data.
        this.fail(invocation, new Error(`a handler must return a Buffer, Uint8Array, string, iterable of chunks or JSON data, got ${describe(value)}`));
        return;
      }
      this.wire.sendChunk(channel, Buffer.from(json));
      this.finish(invocation);
    }
  }

  private pumpAsync(invocation: Invocation, iterator: AsyncIterator<unknown>): void {
    const step = (): void => {
      let next: Promise<IteratorResult<unknown>>;
      try {
        next = Promise.resolve(iterator.next());
      } catch (error) {
        this.fail(invocation, error);
        return;
      }
      next.then(onItem, (error) => this.fail(invocation, error));
    };
    const onItem = (item: IteratorResult<unknown>): void => {
      if (invocation.done) return;
      if (item.done) {
        this.finish(invocation);
        return;
      }
      if (!this.sendItem(invocation, item.value)) return;
      if (this.wire.congested) this.wire.whenDrained(step);
      else step();
    };
    step();
  }

  private pumpSync(invocation: Invocation, iterator: Iterator<unknown>): void {
    const run = (): void => {
      try {
        for (let n = 0; !invocation.done; n++) {
          const item = iterator.next();
          if (invocation.done) return;
          if (item.done) {
            this.finish(invocation);
            return;
          }
          if (!this.sendItem(invocation, item.value)) return;
          if (this.wire.congested) {
            this.wire.whenDrained(run);
            return;
          }
          if (n >= SYNC_BATCH) {
            setImmediate(run);
            return;
          }
        }
      } catch (error) {
        this.fail(invocation, error);
      }
    };
    run();
  }

  /** Sends one streamed item; false (and the channel failed) when it is not a chunk. */
  private sendItem(invocation: Invocation, value: unknown): boolean {
    let chunk: Buffer;
    if (value instanceof Uint8Array) chunk = toBuffer(value);
    else if (typeof value === 'string') chunk = Buffer.from(value);
    else {
      const iterator = invocation.iterator;
      this.fail(invocation, new Error(`a streamed chunk must be a Buffer, Uint8Array or string, got ${describe(value)}`));
      closeIterator(iterator);
      return false;
    }
    this.wire.sendChunk(invocation.channel, chunk);
    return true;
  }

  private finish(invocation: Invocation): void {
    if (invocation.done) return;
    this.close(invocation);
    this.wire.send(FrameType.END, invocation.channel);
  }

  private fail(invocation: Invocation, error: unknown): void {
    if (invocation.done) return;
    this.close(invocation);
    this.sendError(invocation.channel, 'handler', errorMessage(error));
  }

  private close(invocation: Invocation): void {
    invocation.done = true;
    this.open.delete(invocation.channel);
  }

  private sendError(channel: number, code: string, message: string): void {
    this.wire.send(FrameType.ERROR, channel, Buffer.from(JSON.stringify({ code, message })));
  }
}

/** The message of whatever a handler threw or rejected with (never throws itself). */
function errorMessage(error: unknown): string {
  try {
    if (error instanceof Error) return String(error.message);
    return String(error);
  } catch {
    return `the handler threw ${describe(error)}`;
  }
}

function toBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return `a function (${value.name || 'anonymous'})`;
  if (typeof value !== 'object') return `a ${typeof value}`;
  let name = 'Object';
  try {
    name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'Object';
  } catch {
    // a proxy or an exotic object: its class is not worth a second failure
  }
  return `an object (${name})`;
}

function closeIterator(iterator: Iterator<unknown> | AsyncIterator<unknown> | undefined): void {
  if (!iterator || typeof iterator.return !== 'function') return;
  try {
    const returned = iterator.return() as unknown;
    if (returned instanceof Promise) returned.catch(() => {});
  } catch {
    // Closing is best effort.
  }
}

/** A result that arrives for a cancelled call: close it if it is a generator. */
function closeIterable(value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  const asyncIterable = value as Partial<AsyncIterable<unknown>> & Partial<Iterable<unknown>>;
  if (typeof (asyncIterable as { return?: unknown }).return === 'function') closeIterator(asyncIterable as Iterator<unknown>);
}
