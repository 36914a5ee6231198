/**
 * The one stream primitive: a bounded async queue consumed with `for await`.
 * - `push` returns false when the buffer is at its high-water mark (caller should pause its source)
 *   and `onDrain` tells it when to resume.
 * - `fail(error)` makes the consumer's `for await` throw after the buffered items.
 * - Breaking out of `for await` (or `return()`) calls `onCancel` once.
 */
export class AsyncChannel<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: ((result: IteratorResult<T>) => void) | undefined;
  private waiterReject: ((error: unknown) => void) | undefined;
  private closed = false;
  private error: unknown;
  private cancelled = false;
  private drainListener: (() => void) | undefined;

  constructor(
    private readonly highWaterMark = 64,
    private readonly onCancel?: () => void,
  ) {}

  get size(): number {
    return this.items.length;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get isCancelled(): boolean {
    return this.cancelled;
  }

  push(item: T): boolean {
    if (this.closed) return false;
    if (this.waiter) {
      const resolve = this.waiter;
      this.waiter = this.waiterReject = undefined;
      resolve({ value: item, done: false });
      return true;
    }
    this.items.push(item);
    return this.items.length < this.highWaterMark;
  }

  /** Ends the stream after the buffered items. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.waiter && this.items.length === 0) {
      const resolve = this.waiter;
      this.waiter = this.waiterReject = undefined;
      resolve({ value: undefined, done: true });
    }
  }

  /** Ends the stream with an error thrown after the buffered items. */
  fail(error: unknown): void {
    if (this.closed) return;
    this.closed = true;
    if (this.waiterReject && this.items.length === 0) {
      const reject = this.waiterReject;
      this.waiter = this.waiterReject = undefined;
      reject(error ?? new Error('stream failed'));
      return;
    }
    this.error = error ?? new Error('stream failed');
  }

  onDrain(listener: () => void): void {
    this.drainListener = listener;
  }

  private next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) {
      const value = this.items.shift() as T;
      if (this.drainListener && this.items.length === this.highWaterMark >> 1) this.drainListener();
      return Promise.resolve({ value, done: false });
    }
    if (this.closed) {
      if (this.error !== undefined) {
        const error = this.error;
        this.error = undefined;
        return Promise.reject(error);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.waiterReject = reject;
    });
  }

  private cancel(): void {
    if (!this.cancelled && !this.closed) {
      this.cancelled = true;
      this.closed = true;
      this.items.length = 0;
      this.onCancel?.();
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => this.next(),
      return: async () => {
        this.cancel();
        return { value: undefined, done: true };
      },
    };
  }
}
