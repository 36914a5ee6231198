import { InvalidInputError } from '../errors/index.js';
import type { StoredEvent } from './local-store.js';
import type { EnqueueInput, EventStatus, HandlerOutcome } from './types.js';
import { traceIdOfHeaders } from '../trace/context.js';

const MAX_ID_LENGTH = 256;
/** How far ahead an event may be delayed. */
export const MAX_DELAY_MS = 366 * 24 * 60 * 60 * 1000;

/** Checks an enqueue request; returns the attempt budget to use. Errors name the field. */
export function checkEnqueueInput(input: EnqueueInput, defaultMaxAttempts: number): number {
  const invalid = (field: string, expected: string): InvalidInputError =>
    new InvalidInputError('invalid_argument', `enqueue ${field} is invalid: expected ${expected}`, { field });
  if (input.id !== undefined && (typeof input.id !== 'string' || input.id.length === 0 || input.id.length > MAX_ID_LENGTH)) {
    throw invalid('id', `a string of 1 to ${MAX_ID_LENGTH} characters`);
  }
  if (typeof input.app !== 'string' || input.app.length === 0) throw invalid('app', 'a non-empty app name');
  if (typeof input.event !== 'string' || input.event.length === 0) throw invalid('event', 'a non-empty event name');
  if (!(input.data instanceof Uint8Array)) throw invalid('data', 'a Buffer');
  if (input.headers === null || typeof input.headers !== 'object' || Object.values(input.headers).some((v) => typeof v !== 'string')) {
    throw invalid('headers', 'an object of string values');
  }
  if (
    input.notBefore !== undefined &&
    (typeof input.notBefore !== 'number' || !Number.isFinite(input.notBefore) || input.notBefore < 0 || input.notBefore > Date.now() + MAX_DELAY_MS)
  ) {
    throw invalid('notBefore', 'epoch milliseconds >= 0, at most 366 days ahead');
  }
  const attempts = input.maxAttempts;
  if (attempts === undefined || attempts === 0) return defaultMaxAttempts;
  if (typeof attempts !== 'number' || !Number.isInteger(attempts) || attempts < 1) {
    throw invalid('maxAttempts', 'a positive integer (or 0 for the default)');
  }
  return attempts;
}

export function toStatus(record: StoredEvent): EventStatus {
  const status: EventStatus = {
    id: record.id,
    app: record.app,
    event: record.event,
    state: record.state,
    attempts: record.attempts,
    maxAttempts: record.maxAttempts,
    resultTruncated: record.resultTruncated,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  };
  if (record.lastError !== undefined) status.lastError = record.lastError;
  if (record.result !== undefined) status.result = record.result;
  const traceId = traceIdOfHeaders(record.headers);
  if (traceId !== undefined) status.traceId = traceId;
  return status;
}

/** A handler's return value, checked: anything malformed counts as a retryable failure. */
export function checkOutcome(outcome: unknown): HandlerOutcome {
  const o = outcome as Partial<HandlerOutcome> | null | undefined;
  if (o && o.kind === 'completed' && (o as { result?: unknown }).result instanceof Uint8Array) return o as HandlerOutcome;
  if (o && o.kind === 'completed' && (o as { result?: unknown }).result === undefined) return { kind: 'completed', result: Buffer.alloc(0) };
  if (o && o.kind === 'failed') {
    const failed = o as { error?: unknown; retry?: unknown };
    return { kind: 'failed', error: String(failed.error ?? 'failed'), retry: failed.retry !== false };
  }
  if (o && o.kind === 'released') {
    const delay = (o as { delayMs?: unknown }).delayMs;
    return { kind: 'released', delayMs: typeof delay === 'number' && Number.isFinite(delay) && delay > 0 ? delay : 0 };
  }
  return { kind: 'failed', error: `handler returned an invalid outcome: ${JSON.stringify(outcome)}`, retry: true };
}

export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
