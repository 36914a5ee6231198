import { toEngineError } from '../errors/index.js';
import { parseTarget } from '../util/names.js';
import type { ServiceReply, ServiceRequest, ServiceSession } from '../worker/service-channels.js';
import { beginServiceSpan, BodyBuffer, headersArg, integerArg, requireParent, stringArg, withTrace } from './args.js';
import { EVENT_ID_HEADER, type ServiceDeps } from './types.js';

/**
 * `emit`: the event goes into the durable queue like an Enqueue. Without an explicit id, an emit
 * under a queued event gets `<parent event id>.<k>` (k counts that invocation's emits from 1, in
 * the order their SERVICE frames arrive), so a retried attempt re-emits the same ids and the
 * queue drops the duplicates. Under a blocking call: a fresh id.
 */
export function openEmit(deps: ServiceDeps, request: ServiceRequest, reply: ServiceReply, maxBodyBytes: number): ServiceSession {
  const parent = requireParent(request.parent, 'emit');
  const { app, event } = parseTarget(stringArg(request.args, 'target', true));
  const delayMs = integerArg(request.args, 'delay_ms') ?? 0;
  const parentEventId = parent.headers[EVENT_ID_HEADER];
  const id = stringArg(request.args, 'id') ?? (parentEventId ? `${parentEventId}.${++parent.emits}` : undefined);
  const target = `${app}@${event}`;
  const { active, headers } = beginServiceSpan(deps.tracer, withTrace(headersArg(request.args), parent), id ? { kind: 'emit', target, eventId: id } : { kind: 'emit', target });
  const body = new BodyBuffer(maxBodyBytes, 'the emitted event');
  let cancelled = false;
  return {
    onChunk: (chunk) => body.push(chunk),
    onEnd: () => {
      let data: Buffer;
      try {
        data = body.take();
      } catch (error) {
        active?.end({ error });
        reply.fail(toEngineError(error));
        return;
      }
      deps.enqueue({ app, event, data, headers, delayMs, id }).then(
        (result) => {
          active?.end(undefined, { eventId: result.id });
          if (!cancelled) {
            reply.chunk(Buffer.from(JSON.stringify({ id: result.id, duplicate: result.duplicate })));
            reply.end();
          }
        },
        (error: unknown) => {
          active?.end({ error });
          reply.fail(toEngineError(error));
        },
      );
    },
    cancel: () => {
      // An event already handed to the queue stays queued: the id rule makes a retry harmless.
      cancelled = true;
    },
  };
}
