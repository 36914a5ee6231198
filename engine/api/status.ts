import { Metadata, status as GrpcStatus, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { EngineError, toEngineError, type ErrorCode } from '../errors/index.js';

/** Trailer carrying the engine's stable error code beside the gRPC status. */
export const ERROR_CODE_TRAILER = 'cocaine-error-code';

/** The one mapping from engine error codes to gRPC status codes. */
export const STATUS_BY_CODE: Readonly<Record<ErrorCode, GrpcStatus>> = Object.freeze({
  invalid_argument: GrpcStatus.INVALID_ARGUMENT,
  invalid_manifest: GrpcStatus.INVALID_ARGUMENT,
  invalid_profile: GrpcStatus.INVALID_ARGUMENT,
  unsafe_archive: GrpcStatus.INVALID_ARGUMENT,
  not_found: GrpcStatus.NOT_FOUND,
  app_not_found: GrpcStatus.NOT_FOUND,
  event_not_found: GrpcStatus.NOT_FOUND,
  event_id_not_found: GrpcStatus.NOT_FOUND,
  app_stopped: GrpcStatus.FAILED_PRECONDITION,
  app_broken: GrpcStatus.UNAVAILABLE,
  queue_full: GrpcStatus.RESOURCE_EXHAUSTED,
  message_too_large: GrpcStatus.RESOURCE_EXHAUSTED,
  session_id_in_use: GrpcStatus.ALREADY_EXISTS,
  shutting_down: GrpcStatus.RESOURCE_EXHAUSTED,
  deadline_exceeded: GrpcStatus.DEADLINE_EXCEEDED,
  cancelled: GrpcStatus.CANCELLED,
  worker_crashed: GrpcStatus.UNAVAILABLE,
  worker_unavailable: GrpcStatus.UNAVAILABLE,
  spawn_failed: GrpcStatus.UNAVAILABLE,
  startup_timeout: GrpcStatus.UNAVAILABLE,
  heartbeat_timeout: GrpcStatus.UNAVAILABLE,
  handler_error: GrpcStatus.UNKNOWN,
  protocol_error: GrpcStatus.INTERNAL,
  storage_error: GrpcStatus.INTERNAL,
  queue_error: GrpcStatus.INTERNAL,
  internal: GrpcStatus.INTERNAL,
  call_depth_exceeded: GrpcStatus.FAILED_PRECONDITION,
  revision_mismatch: GrpcStatus.ABORTED,
  quota_exceeded: GrpcStatus.RESOURCE_EXHAUSTED,
});

/** When a status arrives without the trailer (e.g. raised by grpc-js itself): the code it stands for. */
const CODE_BY_STATUS: Readonly<Partial<Record<GrpcStatus, ErrorCode>>> = Object.freeze({
  [GrpcStatus.INVALID_ARGUMENT]: 'invalid_argument',
  [GrpcStatus.NOT_FOUND]: 'not_found',
  [GrpcStatus.FAILED_PRECONDITION]: 'app_stopped',
  [GrpcStatus.RESOURCE_EXHAUSTED]: 'queue_full',
  [GrpcStatus.DEADLINE_EXCEEDED]: 'deadline_exceeded',
  [GrpcStatus.CANCELLED]: 'cancelled',
  [GrpcStatus.UNAVAILABLE]: 'worker_unavailable',
  [GrpcStatus.UNKNOWN]: 'handler_error',
});

const KNOWN_CODES = new Set<string>(Object.keys(STATUS_BY_CODE));

export function grpcStatusOf(code: ErrorCode): GrpcStatus {
  return STATUS_BY_CODE[code] ?? GrpcStatus.INTERNAL;
}

/** A status object for `callback(status)` / `call.emit('error', status)`, with the code trailer. */
export function statusFromError(error: unknown): Partial<StatusObject> & { code: GrpcStatus; details: string; metadata: Metadata } {
  const engineError = toEngineError(error);
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_TRAILER, engineError.code);
  return { code: grpcStatusOf(engineError.code), details: engineError.message, metadata };
}

/** The `Error` message of a session frame (SessionFrame.error). */
export function errorFrameOf(error: unknown): { status: number; code: string; message: string } {
  const engineError = toEngineError(error);
  return { status: grpcStatusOf(engineError.code), code: engineError.code, message: engineError.message };
}

/** A failed call as an EngineError carrying the gRPC status, so clients branch on `code`. */
export class RemoteError extends EngineError {
  readonly status: GrpcStatus;
  /** The engine stated the code (trailer or frame); false when grpc-js raised the status itself, e.g. no connection. */
  readonly fromEngine: boolean;
  constructor(code: ErrorCode, status: GrpcStatus, message: string, options?: { cause?: unknown; fromEngine?: boolean }) {
    super(code, message, options);
    this.status = status;
    this.fromEngine = options?.fromEngine ?? false;
  }
}

/** grpc-js's own refusal of a message over a size limit: "Received message larger than max (N vs. M)", "Attempted to send message with a size larger than N". */
const TOO_LARGE = /message (with a size )?larger than/i;

function codeFor(status: GrpcStatus, reported: string | undefined, message = ''): ErrorCode {
  if (reported && KNOWN_CODES.has(reported)) return reported as ErrorCode;
  if (status === GrpcStatus.RESOURCE_EXHAUSTED && TOO_LARGE.test(message)) return 'message_too_large';
  return CODE_BY_STATUS[status] ?? 'internal';
}

/** The reverse mapping, for clients: a grpc-js ServiceError (or a session error frame) → EngineError. */
export function errorFromStatus(error: Partial<ServiceError> & { code?: number; details?: string }): RemoteError {
  const status = (typeof error.code === 'number' ? error.code : GrpcStatus.UNKNOWN) as GrpcStatus;
  const reported = error.metadata?.get(ERROR_CODE_TRAILER)[0];
  const message = error.details || error.message || `gRPC status ${GrpcStatus[status] ?? status}`;
  const code = typeof reported === 'string' ? reported : undefined;
  const mapped = codeFor(status, code, message);
  const text = mapped === 'message_too_large' && code === undefined ? `${message}: a gRPC message exceeded a size limit (grpc.max_receive_message_length / grpc.max_send_message_length; see docs/clients.md)` : message;
  return new RemoteError(mapped, status, text, { cause: error, fromEngine: code !== undefined });
}

/** A session error frame → EngineError. */
export function errorFromFrame(frame: { status: number; code: string; message: string }): RemoteError {
  return new RemoteError(codeFor(frame.status as GrpcStatus, frame.code || undefined), frame.status as GrpcStatus, frame.message, { fromEngine: true });
}
