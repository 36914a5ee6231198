import { EngineError } from '../errors/index.js';
import type { Invocation } from './facade.js';

type Listeners = Parameters<Invocation['listen']>[0];

/** Where a PushedInvocation's request body and cancellation go. */
export interface InvocationSink {
  write(chunk: Buffer): void;
  end(): void;
  cancel(reason: string): void;
}

/**
 * An Invocation whose result is pushed in by its producer (a NATS reply subscription, a broadcast
 * summary): chunks are buffered until read, by iteration or `listen`; `finish` settles it once.
 */
export class PushedInvocation implements Invocation {
  private readonly chunks: Buffer[] = [];
  private outcome: { error?: Error } | undefined;
  private listeners: Listeners | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly sink: InvocationSink) {}

  get settled(): boolean {
    return this.outcome !== undefined;
  }

  push(chunk: Buffer): void {
    if (this.outcome) return;
    if (this.listeners) this.listeners.onChunk(chunk);
    else {
      this.chunks.push(chunk);
      this.wakeUp();
    }
  }

  finish(error?: Error): void {
    if (this.outcome) return;
    this.outcome = { error };
    if (this.listeners) this.settle(this.listeners);
    else this.wakeUp();
  }

  write(chunk: Buffer): void {
    if (!this.outcome) this.sink.write(chunk);
  }

  end(): void {
    if (!this.outcome) this.sink.end();
  }

  cancel(reason = 'cancelled'): void {
    if (this.outcome) return;
    this.finish(new EngineError('cancelled', reason));
    this.sink.cancel(reason);
  }

  listen(listeners: Listeners): void {
    this.listeners = listeners;
    for (const chunk of this.chunks.splice(0)) listeners.onChunk(chunk);
    if (this.outcome) this.settle(listeners);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    let done = false;
    try {
      for (;;) {
        while (this.chunks.length > 0) yield this.chunks.shift() as Buffer;
        if (this.outcome) {
          done = true;
          if (this.outcome.error) throw this.outcome.error;
          return;
        }
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      if (!done) this.cancel('the result was not read to its end');
    }
  }

  private settle(listeners: Listeners): void {
    if (this.outcome?.error) listeners.onError(this.outcome.error);
    else listeners.onEnd();
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
