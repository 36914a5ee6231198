/**
 * One error hierarchy for the whole engine. Callers branch on `code`, never on message text.
 * The mapping to gRPC status codes lives in exactly one place: engine/api/status.ts; the
 * catalogue for clients (code, gRPC status, CLI exit) is docs/errors.md.
 */
/** Every stable error code; docs/errors.md has a row for each (test/api/error-catalogue.test.ts). */
export const ERROR_CODES = Object.freeze([
  'invalid_argument',
  'invalid_manifest',
  'invalid_profile',
  'unsafe_archive',
  'not_found',
  'app_not_found',
  'event_not_found',
  'event_id_not_found',
  'app_stopped',
  'app_broken',
  'queue_full',
  'message_too_large',
  'session_id_in_use',
  'deadline_exceeded',
  'cancelled',
  'worker_crashed',
  'worker_unavailable',
  'spawn_failed',
  'startup_timeout',
  'heartbeat_timeout',
  'handler_error',
  'protocol_error',
  'shutting_down',
  'storage_error',
  'queue_error',
  'internal',
  'call_depth_exceeded',
  'revision_mismatch',
  'quota_exceeded',
] as const);

export type ErrorCode = (typeof ERROR_CODES)[number];

export class EngineError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad input from a caller: names, targets, manifests, profiles, archives. */
export class InvalidInputError extends EngineError {
  /** Path of the offending field (e.g. `profile.pool-limit`), when one is known. */
  readonly field?: string;
  constructor(code: 'invalid_argument' | 'invalid_manifest' | 'invalid_profile' | 'unsafe_archive', message: string, options?: { cause?: unknown; field?: string }) {
    super(code, message, options);
    this.field = options?.field;
  }
}

export class NotFoundError extends EngineError {
  constructor(code: 'not_found' | 'app_not_found' | 'event_not_found' | 'event_id_not_found', message: string) {
    super(code, message);
  }
}

/** The engine refuses more work: queue full, shutting down. */
export class OverloadError extends EngineError {
  constructor(code: 'queue_full' | 'shutting_down', message: string) {
    super(code, message);
  }
}

export class DeadlineError extends EngineError {
  constructor(message: string) {
    super('deadline_exceeded', message);
  }
}

export class CancelledError extends EngineError {
  constructor(message = 'cancelled by the caller') {
    super('cancelled', message);
  }
}

/** The app cannot serve right now: stopped, broken, worker crashed or failed to start. */
export class UnavailableError extends EngineError {
  constructor(
    code: 'app_stopped' | 'app_broken' | 'worker_crashed' | 'worker_unavailable' | 'spawn_failed' | 'startup_timeout' | 'heartbeat_timeout',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** The app's own handler raised an error; `message` is the handler's. */
export class HandlerError extends EngineError {
  constructor(message: string) {
    super('handler_error', message);
  }
}

export class ProtocolError extends EngineError {
  constructor(message: string) {
    super('protocol_error', message);
  }
}

export function isEngineError(error: unknown): error is EngineError {
  return error instanceof EngineError;
}

/** Wraps anything thrown into an EngineError, keeping the original as `cause`. */
export function toEngineError(error: unknown): EngineError {
  if (error instanceof EngineError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new EngineError('internal', message, { cause: error });
}
