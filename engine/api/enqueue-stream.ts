import type { ServerDuplexStream } from '@grpc/grpc-js';
import { InvalidInputError } from '../errors/index.js';
import type { EngineFacade } from './facade.js';
import type { EnqueueReplyMessage, EnqueueRequestMessage, EnqueueStreamReplyMessage, EnqueueStreamRequestMessage } from './messages.js';
import { enqueueFields, sequenceField } from './request-fields.js';
import { errorFrameOf } from './status.js';
import { beginRequestTrace, traceCarrier } from './request-trace.js';
import { formatTraceparent, withTraceHeaders } from '../trace/context.js';
import type { SpanStart } from '../trace/span.js';
import type { ActiveSpan } from '../trace/tracer.js';

/** Events of one EnqueueStream being queued at once; past it the engine stops reading the stream. */
export const ENQUEUE_STREAM_WINDOW = 1024;

/** An Enqueue request on the wire → the facade's input (throws InvalidInputError on a bad field: request-fields.ts). */
export function enqueueRequest(facade: EngineFacade, request: EnqueueRequestMessage, trace?: ActiveSpan): Promise<EnqueueReplyMessage> {
  let fields: ReturnType<typeof enqueueFields>;
  try {
    fields = enqueueFields(request);
  } catch (error) {
    trace?.end({ error });
    throw error;
  }
  if (!trace) return facade.enqueue(fields);
  // The event is stored with the traceparent of this (emit) span: each delivery continues it.
  const queued = facade.enqueue({ ...fields, headers: withTraceHeaders(fields.headers, trace.context) });
  return queued.then(
    (result) => {
      trace.end({ status: 'ok' }, { eventId: result.id });
      return result;
    },
    (error: unknown) => {
      trace.end({ error });
      throw error;
    },
  );
}

/** The `emit` span of an enqueue (its event id, when the client chose one; else learnt when queued). */
export function enqueueSpanFields(request: Partial<EnqueueRequestMessage> | null | undefined): Omit<SpanStart, 'node'> {
  const target = typeof request?.target === 'string' ? request.target : '';
  return typeof request?.id === 'string' && request.id ? { kind: 'emit', target, eventId: request.id } : { kind: 'emit', target };
}

/**
 * Engine.EnqueueStream: each request is queued as it comes, its reply (seq + id, or seq + error)
 * sent once the queue accepted or refused it. Flow control is the stream's own: with
 * ENQUEUE_STREAM_WINDOW events pending the engine pauses reading, so HTTP/2 window updates stop
 * and a fast producer waits instead of piling events up in memory. The stream ends after the
 * client half-closes and every reply is out.
 */
export function serveEnqueueStream(facade: EngineFacade, call: ServerDuplexStream<EnqueueStreamRequestMessage, EnqueueStreamReplyMessage>): void {
  let pending = 0;
  let paused = false;
  let inputEnded = false;
  let finished = false;

  const finishIfDone = () => {
    if (!inputEnded || pending > 0 || finished) return;
    finished = true;
    call.end();
  };
  const reply = (message: EnqueueStreamReplyMessage) => {
    pending--;
    if (!finished) call.write(message);
    if (paused && pending < ENQUEUE_STREAM_WINDOW / 2) {
      paused = false;
      call.resume();
    }
    finishIfDone();
  };

  call.on('data', (message: EnqueueStreamRequestMessage) => {
    const seq = message.seq;
    pending++;
    if (pending >= ENQUEUE_STREAM_WINDOW && !paused) {
      paused = true;
      call.pause();
    }
    let queued: Promise<EnqueueReplyMessage>;
    let active: ActiveSpan | undefined;
    try {
      sequenceField(seq, 'seq');
      if (!message.event) throw new InvalidInputError('invalid_argument', `EnqueueStream: request ${seq} carries no \`event\``, { field: 'event' });
      active = beginRequestTrace(facade.traces, traceCarrier(call.metadata, message.event.headers), enqueueSpanFields(message.event));
      queued = enqueueRequest(facade, message.event, active);
    } catch (error) {
      queued = Promise.reject(error);
    }
    const traceparent = active ? formatTraceparent(active.context) : undefined;
    queued.then(
      (result) => reply(traceparent ? { seq, id: result.id, duplicate: result.duplicate, traceparent } : { seq, id: result.id, duplicate: result.duplicate }),
      (error: unknown) => reply(traceparent ? { seq, error: errorFrameOf(error), traceparent } : { seq, error: errorFrameOf(error) }),
    );
  });
  call.on('end', () => {
    inputEnded = true;
    finishIfDone();
  });
  // Events already handed to the queue stay queued: a cancelled stream only loses its replies.
  call.on('cancelled', () => (finished = true));
  call.on('error', () => (finished = true));
}
