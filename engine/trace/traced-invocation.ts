/**
 * An Invocation whose span ends with it: ok when its result ended, the error it failed with, or
 * `cancelled` when it was abandoned first. Adds no work per chunk beyond one call.
 */
import type { Invocation } from '../api/facade.js';
import { EngineError } from '../errors/index.js';
import type { ActiveSpan } from './tracer.js';

export function tracedInvocation(invocation: Invocation, active: ActiveSpan): Invocation {
  return {
    write: (chunk) => invocation.write(chunk),
    end: () => invocation.end(),
    cancel(reason) {
      active.end({ error: new EngineError('cancelled', reason ?? 'cancelled') });
      invocation.cancel(reason);
    },
    listen(listeners) {
      invocation.listen({
        onChunk: (chunk) => listeners.onChunk(chunk),
        onEnd() {
          active.end();
          listeners.onEnd();
        },
        onError(error) {
          active.end({ error });
          listeners.onError(error);
        },
      });
    },
    async *[Symbol.asyncIterator]() {
      try {
        for await (const chunk of invocation) yield chunk;
        active.end();
      } catch (error) {
        active.end({ error });
        throw error;
      } finally {
        active.end({ error: new EngineError('cancelled', 'the result was not read to its end') });
      }
    },
  };
}
