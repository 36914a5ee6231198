import { EngineError, HandlerError, NotFoundError } from '../errors/index.js';
import { decodeJson, type ErrorPayload, type Frame } from '../protocol/frames.js';

const NO_HEADERS = '{}';

/** The INVOKE payload, without a JSON.stringify of an object per call on the hot path. */
export function invokePayload(event: string, headers: Record<string, string>, deadline: number): Buffer {
  let encodedHeaders = NO_HEADERS;
  for (const _key in headers) {
    encodedHeaders = JSON.stringify(headers);
    break;
  }
  return Buffer.from(`{"event":${JSON.stringify(event)},"headers":${encodedHeaders},"deadline":${deadline}}`);
}

/** A worker's ERROR frame as the engine error its caller gets. */
export function wireError(frame: Frame): EngineError {
  let payload: ErrorPayload;
  try {
    payload = decodeJson<ErrorPayload>(frame);
  } catch {
    return new EngineError('protocol_error', 'worker sent a malformed ERROR frame');
  }
  const message = String(payload.message ?? '');
  switch (payload.code) {
    case 'not_found':
      return new NotFoundError('event_not_found', message || 'no handler for this event');
    case 'handler':
      return new HandlerError(message);
    case 'deadline':
      return new EngineError('deadline_exceeded', message || 'deadline exceeded');
    case 'cancelled':
      return new EngineError('cancelled', message || 'cancelled');
    case 'protocol':
      return new EngineError('protocol_error', message);
    default:
      return new EngineError('internal', message || `worker error ${String(payload.code)}`);
  }
}
