import { FrameType, WORKER_CHANNEL_BASE, type Frame } from '../../../engine/protocol/frames.js';
import type { CallOptions, CallResult, EmitOptions, EmitResult, LogLevel, ServiceBody } from './api.js';
import type { Wire } from '../../../engine/protocol/wire.js';

/** A failed service request; `code` is the engine's error code (docs/errors.md) or `cancelled`. */
export class ServiceError extends Error {
  override readonly name = 'ServiceError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Waiter = { resolve: (result: IteratorResult<Buffer>) => void; reject: (error: unknown) => void };
const EMPTY = Buffer.alloc(0);

/** The answer of one worker channel: chunks as they come, END, or an ERROR. */
class Answer implements CallResult {
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private failure: ServiceError | undefined;
  private waiter: Waiter | undefined;
  private readers = 0;

  constructor(private readonly onStop: () => void) {}

  push(chunk: Buffer): void {
    if (this.ended || this.failure) return;
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) waiter.resolve({ value: chunk, done: false });
    else this.chunks.push(chunk);
  }

  end(): void {
    if (this.ended || this.failure) return;
    this.ended = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve({ value: undefined, done: true });
  }

  fail(error: ServiceError): void {
    if (this.ended || this.failure) return;
    this.failure = error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(error);
  }

  get finished(): boolean {
    return this.ended || this.failure !== undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.readers++ > 0) throw new Error('a service answer can be read once');
    return {
      next: () => {
        if (this.chunks.length > 0) return Promise.resolve({ value: this.chunks.shift()!, done: false });
        if (this.failure) return Promise.reject(this.failure);
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
      },
      return: () => {
        // The reader stopped early: the callee is cancelled.
        if (!this.finished) this.onStop();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  async body(): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of this) chunks.push(chunk);
    return chunks.length === 0 ? EMPTY : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
  }

  async text(): Promise<string> {
    return (await this.body()).toString('utf8');
  }

  async json<T = unknown>(): Promise<T> {
    return JSON.parse(await this.text()) as T;
  }
}

interface OpenRequest {
  parent: number;
  answer: Answer;
}

/**
 * The worker's side of service channels (protocol version 2): opens a channel per request
 * (`0x80000000 | k`), streams its body, and routes the engine's CHUNK / END / ERROR to its answer.
 */
export class Services {
  private next = 1;
  private readonly open = new Map<number, OpenRequest>();

  constructor(
    private readonly wire: Wire,
    /** Protocol version this worker handshook with; below 2 every request fails. */
    readonly protocol: number,
  ) {}

  onFrame(frame: Frame): void {
    const request = this.open.get(frame.channel);
    if (!request) return;
    switch (frame.type) {
      case FrameType.CHUNK:
        request.answer.push(frame.payload);
        return;
      case FrameType.END:
        this.open.delete(frame.channel);
        request.answer.end();
        return;
      case FrameType.ERROR: {
        this.open.delete(frame.channel);
        let code = 'internal';
        let message = 'the engine failed the request';
        try {
          const parsed = JSON.parse(frame.payload.toString('utf8')) as { code?: unknown; message?: unknown };
          if (typeof parsed.code === 'string') code = parsed.code;
          if (typeof parsed.message === 'string') message = parsed.message;
        } catch {
          // keep the defaults
        }
        request.answer.fail(new ServiceError(code, message));
        return;
      }
    }
  }

  /** The invocation was cancelled: cancel what it still has open (the engine is told). */
  cancelParent(parent: number, code: string): void {
    for (const [channel, request] of this.open) {
      if (request.parent !== parent) continue;
      this.cancel(channel, request, new ServiceError('cancelled', code === 'deadline' ? 'the deadline of the calling invocation passed' : 'the calling invocation was cancelled'));
    }
  }

  request(parent: number, service: string, args: Record<string, unknown>, body: ServiceBody | undefined, signal: AbortSignal | undefined): Answer {
    let channel = 0;
    const answer = new Answer(() => {
      const request = this.open.get(channel);
      if (request) this.cancel(channel, request, new ServiceError('cancelled', 'the reader stopped'));
    });
    if (this.protocol < 2) {
      answer.fail(new ServiceError('unsupported', 'the engine does not serve services to this worker (protocol version 1)'));
      return answer;
    }
    if (signal?.aborted) {
      answer.fail(new ServiceError('cancelled', 'the calling invocation was cancelled'));
      return answer;
    }
    channel = (WORKER_CHANNEL_BASE | this.next++) >>> 0;
    this.open.set(channel, { parent, answer });
    this.wire.send(FrameType.SERVICE, channel, Buffer.from(JSON.stringify({ service, parent, args })));
    this.sendBody(channel, body);
    return answer;
  }

  log(parent: number, level: LogLevel, message: string, fields: Record<string, unknown> | undefined): void {
    if (this.protocol < 2) return;
    const record = fields === undefined ? { level, message: String(message) } : { level, message: String(message), fields };
    this.wire.send(FrameType.LOG, parent, Buffer.from(JSON.stringify(record)));
  }

  private cancel(channel: number, request: OpenRequest, error: ServiceError): void {
    this.open.delete(channel);
    this.wire.send(FrameType.ERROR, channel, Buffer.from(JSON.stringify({ code: 'cancelled', message: error.message })));
    request.answer.fail(error);
  }

  private sendBody(channel: number, body: ServiceBody | undefined): void {
    if (body === undefined || body === null) {
      this.wire.send(FrameType.END, channel);
      return;
    }
    if (typeof body === 'string' || body instanceof Uint8Array) {
      const chunk = typeof body === 'string' ? Buffer.from(body) : toBuffer(body);
      if (chunk.length > 0) this.wire.sendChunk(channel, chunk);
      this.wire.send(FrameType.END, channel);
      return;
    }
    void this.streamBody(channel, body);
  }

  private async streamBody(channel: number, body: AsyncIterable<unknown> | Iterable<unknown>): Promise<void> {
    try {
      for await (const item of body as AsyncIterable<unknown>) {
        if (!this.open.has(channel)) return;
        if (typeof item !== 'string' && !(item instanceof Uint8Array)) throw new Error(`a body chunk must be a Buffer, Uint8Array or string, got ${typeof item}`);
        this.wire.sendChunk(channel, typeof item === 'string' ? Buffer.from(item) : toBuffer(item));
        if (this.wire.congested) await new Promise<void>((resolve) => this.wire.whenDrained(resolve));
      }
      if (this.open.has(channel)) this.wire.send(FrameType.END, channel);
    } catch (error) {
      const request = this.open.get(channel);
      if (request) this.cancel(channel, request, new ServiceError('invalid_argument', `the request body failed: ${(error as Error).message}`));
    }
  }
}

/**
 * A request a handler did not await (an emit left running when it returned, whose channel the
 * engine then cancels) must not become an unhandled rejection that takes the worker down; an
 * awaiting caller still gets the error.
 */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

function toBuffer(value: Uint8Array): Buffer {
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** The API a request exposes, bound to its invocation channel. */
export class RequestServices {
  constructor(
    private readonly services: Services | undefined,
    private readonly parent: number,
    private readonly signal: () => AbortSignal,
  ) {}

  private get s(): Services {
    if (!this.services) throw new ServiceError('unsupported', 'services are not available here');
    return this.services;
  }

  call(target: string, body?: ServiceBody, options: CallOptions = {}): CallResult {
    const args: Record<string, unknown> = { target };
    if (options.headers) args.headers = options.headers;
    if (options.timeoutMs) args.timeout_ms = Math.max(1, Math.round(options.timeoutMs));
    if (options.routingKey !== undefined) args.routing_key = options.routingKey;
    if (options.broadcast) args.broadcast = true;
    return this.s.request(this.parent, 'call', args, body, this.signal());
  }

  emit(target: string, body?: ServiceBody, options: EmitOptions = {}): Promise<EmitResult> {
    const args: Record<string, unknown> = { target };
    if (options.headers) args.headers = options.headers;
    if (options.delayMs) args.delay_ms = Math.max(0, Math.round(options.delayMs));
    if (options.id) args.id = options.id;
    return handled(this.s.request(this.parent, 'emit', args, body, this.signal()).json<EmitResult>());
  }

  readonly storage = {
    get: (key: string) => handled(this.storageOps.get(key)),
    put: (key: string, value: Buffer | Uint8Array | string, options: { revision?: number } = {}) => handled(this.storageOps.put(key, value, options)),
    delete: (key: string, options: { revision?: number } = {}) => handled(this.storageOps.delete(key, options)),
    list: (prefix = '', options: { limit?: number; after?: string } = {}) => handled(this.storageOps.list(prefix, options)),
  };

  private readonly storageOps = {
    get: async (key: string): Promise<{ value: Buffer; revision: number } | undefined> => {
      const answer = await this.storageRequest({ method: 'get', key }).json<{ found: boolean; revision?: number; value?: string }>();
      return answer.found ? { value: Buffer.from(answer.value ?? '', 'base64'), revision: answer.revision ?? 0 } : undefined;
    },
    put: async (key: string, value: Buffer | Uint8Array | string, options: { revision?: number } = {}): Promise<number> => {
      const args: Record<string, unknown> = { method: 'put', key };
      if (options.revision !== undefined) args.revision = options.revision;
      return (await this.storageRequest(args, typeof value === 'string' ? Buffer.from(value) : value).json<{ revision: number }>()).revision;
    },
    delete: async (key: string, options: { revision?: number } = {}): Promise<boolean> => {
      const args: Record<string, unknown> = { method: 'delete', key };
      if (options.revision !== undefined) args.revision = options.revision;
      return (await this.storageRequest(args).json<{ deleted: boolean }>()).deleted;
    },
    list: async (prefix = '', options: { limit?: number; after?: string } = {}): Promise<{ keys: string[]; next?: string }> => {
      const args: Record<string, unknown> = { method: 'list', prefix };
      if (options.limit !== undefined) args.limit = options.limit;
      if (options.after !== undefined) args.after = options.after;
      return this.storageRequest(args).json<{ keys: string[]; next?: string }>();
    },
  };

  readonly log = {
    debug: (message: string, fields?: Record<string, unknown>) => this.services?.log(this.parent, 'debug', message, fields),
    info: (message: string, fields?: Record<string, unknown>) => this.services?.log(this.parent, 'info', message, fields),
    warn: (message: string, fields?: Record<string, unknown>) => this.services?.log(this.parent, 'warn', message, fields),
    error: (message: string, fields?: Record<string, unknown>) => this.services?.log(this.parent, 'error', message, fields),
  };

  private storageRequest(args: Record<string, unknown>, body?: Buffer | Uint8Array): Answer {
    return this.s.request(this.parent, 'storage', args, body, this.signal());
  }
}
