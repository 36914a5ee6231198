import type { Invocation, InvocationRequest } from '../api/facade.js';
import { CancelledError, DeadlineError, type EngineError } from '../errors/index.js';
import { AsyncChannel } from '../util/async-channel.js';
import type { ChannelListener, Worker, WorkerChannel } from '../worker/worker.js';

interface ResultListeners {
  onChunk(chunk: Buffer): void;
  onEnd(): void;
  onError(error: Error): void;
}

/** Deadlines closer than this get their own timer; later ones are swept once a second. */
export const NEAR_DEADLINE_MS = 30_000;

export type InvocationOutcome = 'completed' | 'failed' | 'timeout' | 'cancelled';

/**
 * One blocking call inside an app engine: buffered while it waits for a worker, then bound to a
 * worker channel. Results go to callback listeners (hot path) or to an async iterator.
 */
export class PooledInvocation implements Invocation, ChannelListener {
  readonly enqueuedAt = Date.now();
  worker: Worker | undefined;
  private channel: WorkerChannel | undefined;
  private body: Buffer[] = [];
  private bodyEnded = false;
  private finished = false;
  private listeners: ResultListeners | undefined;
  private early: Array<{ chunk?: Buffer; end?: true; error?: Error }> | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly request: InvocationRequest,
    readonly deadline: number,
    private readonly onFinish: (invocation: PooledInvocation, outcome: InvocationOutcome, error?: EngineError) => void,
  ) {
    const delay = deadline - Date.now();
    if (delay <= 0) {
      queueMicrotask(() => this.expire());
    } else if (delay <= NEAR_DEADLINE_MS) {
      this.deadlineTimer = setTimeout(() => this.expire(), delay);
    }
    // Far deadlines (the profile's default is a day) are swept by the app engine: no timer per call.
  }

  /** Expires the call if its deadline has passed (the app engine's sweep, for far deadlines). */
  checkDeadline(now: number): void {
    if (!this.finished && now >= this.deadline) this.expire();
  }

  get isFinished(): boolean {
    return this.finished;
  }

  get isAssigned(): boolean {
    return this.channel !== undefined;
  }

  // ----------------------------------------------------------------- caller side

  write(chunk: Buffer): void {
    if (this.finished || this.bodyEnded) return;
    if (this.channel) this.channel.write(chunk);
    else this.body.push(chunk);
  }

  end(): void {
    if (this.finished || this.bodyEnded) return;
    this.bodyEnded = true;
    this.channel?.end();
  }

  cancel(reason = 'cancelled by the caller'): void {
    if (this.finished) return;
    this.channel?.cancel('cancelled', reason);
    this.finish('cancelled', new CancelledError(reason), false);
  }

  listen(listeners: ResultListeners): void {
    this.listeners = listeners;
    const early = this.early ?? [];
    this.early = undefined;
    for (const item of early) {
      if (item.chunk) listeners.onChunk(item.chunk);
      else if (item.end) listeners.onEnd();
      else if (item.error) listeners.onError(item.error);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const channel = new AsyncChannel<Buffer>(256, () => this.cancel('the reader stopped'));
    this.listen({
      onChunk: (chunk) => channel.push(chunk),
      onEnd: () => channel.close(),
      onError: (error) => channel.fail(error),
    });
    return channel[Symbol.asyncIterator]();
  }

  // ----------------------------------------------------------------- engine side

  /** Binds the call to a worker channel and sends what the caller already wrote. */
  assign(worker: Worker): void {
    this.worker = worker;
    const { event, headers } = this.request;
    this.channel = worker.open(event, headers, this.deadline, this);
    for (const chunk of this.body) this.channel.write(chunk);
    this.body = [];
    if (this.bodyEnded) this.channel.end();
  }

  /** Fails the call (queue full, app broken, crash...). */
  fail(error: EngineError, outcome: InvocationOutcome = 'failed'): void {
    if (this.finished) return;
    this.channel?.cancel('cancelled', error.message);
    this.finish(outcome, error, true);
  }

  onChunk(chunk: Buffer): void {
    if (this.finished) return;
    this.emit({ chunk });
  }

  onEnd(): void {
    if (this.finished) return;
    this.finish('completed', undefined, true);
  }

  onError(error: EngineError): void {
    if (this.finished) return;
    this.finish(error.code === 'deadline_exceeded' ? 'timeout' : 'failed', error, true);
  }

  private expire(): void {
    if (this.finished) return;
    const waited = Date.now() - this.enqueuedAt;
    const error = new DeadlineError(
      this.channel
        ? `deadline exceeded after ${waited} ms while the worker was handling ${this.request.app}@${this.request.event}`
        : `deadline exceeded after ${waited} ms while waiting for a worker of app "${this.request.app}"`,
    );
    this.channel?.cancel('deadline', error.message);
    this.finish('timeout', error, true);
  }

  private finish(outcome: InvocationOutcome, error: EngineError | undefined, notifyCaller: boolean): void {
    this.finished = true;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.body = [];
    if (notifyCaller) this.emit(error ? { error } : { end: true });
    this.onFinish(this, outcome, error);
  }

  private emit(item: { chunk?: Buffer; end?: true; error?: Error }): void {
    const listeners = this.listeners;
    if (!listeners) {
      (this.early ??= []).push(item);
      return;
    }
    if (item.chunk) listeners.onChunk(item.chunk);
    else if (item.end) listeners.onEnd();
    else if (item.error) listeners.onError(item.error);
  }
}
