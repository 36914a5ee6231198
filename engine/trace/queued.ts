/**
 * Each delivery of a queued event as a `queued` span: the event runner's invocation continues the
 * trace stored with the event (its `traceparent` names the enqueue's `emit` span), so every
 * attempt is a sibling under it, with its attempt number, event id and outcome. The handler sees
 * the `traceparent` of this attempt's span.
 */
import type { Invocation, InvocationRequest } from '../api/facade.js';
import { continueTrace, withTraceHeaders } from './context.js';
import { tracedInvocation } from './traced-invocation.js';
import type { Tracer } from './tracer.js';

/** Headers the event runner adds to a queued event's invocation (engine/queue/event-runner.ts). */
export const EVENT_ID_HEADER = 'cocaine-event-id';
export const ATTEMPT_HEADER = 'cocaine-attempt';

export function tracedQueuedInvoke(tracer: Tracer | undefined, invoke: (request: InvocationRequest) => Invocation): (request: InvocationRequest) => Invocation {
  if (!tracer) return invoke;
  return (request) => {
    const { context } = continueTrace(request.headers);
    const attempt = Number(request.headers[ATTEMPT_HEADER]);
    const eventId = request.headers[EVENT_ID_HEADER];
    const active = tracer.begin(context, {
      kind: 'queued',
      target: `${request.app}@${request.event}`,
      ...(Number.isInteger(attempt) && attempt > 0 ? { attempt } : {}),
      ...(eventId ? { eventId } : {}),
    });
    const headers = withTraceHeaders(request.headers, active.context);
    let invocation: Invocation;
    try {
      invocation = invoke({ ...request, headers });
    } catch (error) {
      active.end({ error });
      throw error;
    }
    return tracedInvocation(invocation, active);
  };
}
