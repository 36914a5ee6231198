/**
 * An Invocation whose span ends with it: ok when its result ended, the error it failed with, or
 * `cancelled` when it was abandoned first. Classes, not closures: two objects per call.
 */
import type { Invocation } from '../api/facade.js';
import { EngineError } from '../errors/index.js';
import type { ActiveSpan } from './tracer.js';

type Listeners = Parameters<Invocation['listen']>[0];

class EndingListeners implements Listeners {
  constructor(
    private readonly listeners: Listeners,
    private readonly active: ActiveSpan,
  ) {}
  onChunk(chunk: Buffer): void {
    this.listeners.onChunk(chunk);
  }
  onEnd(): void {
    this.active.end();
    this.listeners.onEnd();
  }
  onError(error: Error): void {
    this.active.end({ error });
    this.listeners.onError(error);
  }
}

class TracedInvocation implements Invocation {
  constructor(
    private readonly invocation: Invocation,
    private readonly active: ActiveSpan,
  ) {}

  write(chunk: Buffer): void {
    this.invocation.write(chunk);
  }
  end(): void {
    this.invocation.end();
  }
  cancel(reason?: string): void {
    this.active.end({ error: new EngineError('cancelled', reason ?? 'cancelled') });
    this.invocation.cancel(reason);
  }
  listen(listeners: Listeners): void {
    this.invocation.listen(new EndingListeners(listeners, this.active));
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    let settled = false;
    try {
      for await (const chunk of this.invocation) yield chunk;
      settled = true;
      this.active.end();
    } catch (error) {
      settled = true;
      this.active.end({ error });
      throw error;
    } finally {
      if (!settled) this.active.end({ error: new EngineError('cancelled', 'the result was not read to its end') });
    }
  }
}

export function tracedInvocation(invocation: Invocation, active: ActiveSpan): Invocation {
  return new TracedInvocation(invocation, active);
}
