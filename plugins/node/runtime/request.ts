import type { CallOptions, CallResult, EmitOptions, EmitResult, Log, Request, ServiceBody, Storage } from './api.js';
import { RequestServices, type Services } from './services.js';

/** The reason `request.signal` is aborted with; `code` is the engine's cancel code. */
export class CancelError extends Error {
  override readonly name = 'AbortError';
  constructor(readonly code: string) {
    super(code === 'deadline' ? 'the deadline of the call passed' : 'the call was cancelled');
  }
}

type Waiter = { resolve: (result: IteratorResult<Buffer>) => void; reject: (error: unknown) => void };
const EMPTY = Buffer.alloc(0);

/**
 * The request body arrives in CHUNK frames; the handler reads it whole (`body()`) or as it comes
 * (`for await`). Chunks are kept until read: the engine bounds the size of a body.
 */
export class WorkerRequest implements Request {
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private failure: CancelError | undefined;
  private waiter: Waiter | undefined;
  private bodyWaiter: { resolve: (body: Buffer) => void; reject: (error: unknown) => void } | undefined;
  private controller: AbortController | undefined;
  private bound: RequestServices | undefined;

  constructor(
    readonly event: string,
    readonly headers: Readonly<Record<string, string>>,
    readonly deadline: number,
    private readonly channel = 0,
    private readonly services?: Services,
  ) {}

  /** The service API, made on first use (most handlers never call a service). */
  private get svc(): RequestServices {
    return (this.bound ??= new RequestServices(this.services, this.channel, () => this.signal));
  }

  call(target: string, body?: ServiceBody, options?: CallOptions): CallResult {
    return this.svc.call(target, body, options);
  }

  emit(target: string, body?: ServiceBody, options?: EmitOptions): Promise<EmitResult> {
    return this.svc.emit(target, body, options);
  }

  get storage(): Storage {
    return this.svc.storage;
  }

  get log(): Log {
    return this.svc.log;
  }

  get signal(): AbortSignal {
    // Created on first use: most handlers never look at it.
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.failure) this.controller.abort(this.failure);
    }
    return this.controller.signal;
  }

  /** Engine side: one body chunk. */
  push(chunk: Buffer): void {
    if (this.ended || this.failure) return;
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve({ value: chunk, done: false });
    } else {
      this.chunks.push(chunk);
    }
  }

  /** Engine side: END of the body. */
  end(): void {
    if (this.ended || this.failure) return;
    this.ended = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve({ value: undefined, done: true });
    const bodyWaiter = this.bodyWaiter;
    this.bodyWaiter = undefined;
    bodyWaiter?.resolve(this.take());
  }

  /** Engine side: the call was cancelled. */
  abort(code: string): void {
    if (this.failure) return;
    this.failure = new CancelError(code);
    this.controller?.abort(this.failure);
    this.waiter?.reject(this.failure);
    this.bodyWaiter?.reject(this.failure);
    this.waiter = this.bodyWaiter = undefined;
  }

  body(): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve(this.take());
    if (this.bodyWaiter || this.waiter) return Promise.reject(new Error('the request body is already being read'));
    return new Promise((resolve, reject) => (this.bodyWaiter = { resolve, reject }));
  }

  async text(): Promise<string> {
    return (await this.body()).toString('utf8');
  }

  async json<T = unknown>(): Promise<T> {
    return JSON.parse((await this.body()).toString('utf8')) as T;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return {
      next: () => {
        if (this.chunks.length > 0) return Promise.resolve({ value: this.chunks.shift()!, done: false });
        if (this.failure) return Promise.reject(this.failure);
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        if (this.bodyWaiter || this.waiter) return Promise.reject(new Error('the request body is already being read'));
        return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
      },
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }

  private take(): Buffer {
    const chunks = this.chunks.splice(0);
    if (chunks.length === 0) return EMPTY;
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
  }
}
