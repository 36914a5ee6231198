/**
 * A span: the record of one step of a request (an invocation, a call or emit from a handler, a
 * queued event's attempt, an HTTP request), with its timing and outcome. Spans are plain JSON so
 * every store keeps them as they are; their text fields are bounded so a trace's size is.
 */
import { InvalidInputError, isEngineError } from '../errors/index.js';
import { isSpanId, isTraceId, type TraceContext } from './context.js';

export type SpanKind = 'invoke' | 'call' | 'emit' | 'queued' | 'http' | 'session';
export const SPAN_KINDS: readonly SpanKind[] = Object.freeze(['invoke', 'call', 'emit', 'queued', 'http', 'session']);

/** `ok`, or the stable EngineError code (or a handler's/transport's code) and a message. */
export type SpanOutcome = { status: 'ok' } | { status: 'error'; code: string; message: string };

export interface Span {
  traceId: string;
  spanId: string;
  /** The span that caused this one; absent for a trace's first span with no remote caller. */
  parentSpanId?: string;
  kind: SpanKind;
  /** `app@event`. */
  target: string;
  /** The engine node that ran the step. */
  node: string;
  /** The worker that served it, when one did. */
  worker?: string;
  /** ms since the epoch. */
  start: number;
  /** ms since the epoch; absent while the step runs. */
  end?: number;
  /** Absent while the step runs. */
  outcome?: SpanOutcome;
  /** Which delivery of a queued event this is (1 for the first). */
  attempt?: number;
  /** The queued event's id, for `emit` and `queued` spans. */
  eventId?: string;
}

/** Bounds on a span's text, so that a trace's memory is bounded by its span count. */
export const SPAN_LIMITS = Object.freeze({ targetChars: 200, nodeChars: 128, workerChars: 128, eventIdChars: 128, codeChars: 64, messageChars: 512 });

/**
 * The most bytes one span takes as JSON: every text field at its bound (1,160 characters in all)
 * with every character escaped as `\u00XX` (6 bytes), plus ids, times and keys.
 */
export const MAX_SPAN_JSON_BYTES = 8_192;

const clip = (text: string, chars: number): string => (text.length > chars ? `${text.slice(0, chars - 1)}…` : text);

export interface SpanStart {
  kind: SpanKind;
  target: string;
  node: string;
  worker?: string;
  attempt?: number;
  eventId?: string;
  /** ms since the epoch; now when absent. */
  start?: number;
}

/** The open span of the step `context` names (see childContext / continueTrace). */
export function startSpan(context: TraceContext, fields: SpanStart): Span {
  const span: Span = {
    traceId: context.traceId,
    spanId: context.spanId,
    kind: fields.kind,
    target: clip(fields.target, SPAN_LIMITS.targetChars),
    node: clip(fields.node, SPAN_LIMITS.nodeChars),
    start: fields.start ?? Date.now(),
  };
  if (context.parentSpanId !== undefined) span.parentSpanId = context.parentSpanId;
  if (fields.worker !== undefined) span.worker = clip(fields.worker, SPAN_LIMITS.workerChars);
  if (fields.attempt !== undefined) span.attempt = fields.attempt;
  if (fields.eventId !== undefined) span.eventId = clip(fields.eventId, SPAN_LIMITS.eventIdChars);
  return span;
}

/** The outcome of a step that threw `error`: its EngineError code, or `internal`. */
export function errorOutcome(error: unknown): SpanOutcome {
  const code = isEngineError(error) ? error.code : 'internal';
  const message = error instanceof Error ? error.message : String(error);
  return { status: 'error', code: clip(code, SPAN_LIMITS.codeChars), message: clip(message, SPAN_LIMITS.messageChars) };
}

const OK: SpanOutcome = Object.freeze({ status: 'ok' });

/** A copy of `span`, finished at `end` (now when absent) with `outcome` (or `errorOutcome(error)`). */
export function finishSpan(span: Span, outcome: SpanOutcome | { error: unknown }, end: number = Date.now()): Span {
  const result: SpanOutcome = 'error' in outcome ? errorOutcome(outcome.error) : outcome;
  const bounded: SpanOutcome =
    result.status === 'ok' ? OK : { status: 'error', code: clip(result.code, SPAN_LIMITS.codeChars), message: clip(result.message, SPAN_LIMITS.messageChars) };
  // Built field by field (a spread of an object with optional fields is several times slower).
  const finished: Span = { traceId: span.traceId, spanId: span.spanId, kind: span.kind, target: span.target, node: span.node, start: span.start };
  if (span.parentSpanId !== undefined) finished.parentSpanId = span.parentSpanId;
  if (span.worker !== undefined) finished.worker = span.worker;
  finished.end = Math.max(end, span.start);
  finished.outcome = bounded;
  if (span.attempt !== undefined) finished.attempt = span.attempt;
  if (span.eventId !== undefined) finished.eventId = span.eventId;
  return finished;
}

/** ms the span took, or undefined while it runs. */
export const spanDuration = (span: Span): number | undefined => (span.end === undefined ? undefined : span.end - span.start);

const bad = (field: string, message: string): InvalidInputError => new InvalidInputError('invalid_argument', `span ${field} ${message}`, { field: `span.${field}` });

function checkText(span: Span, field: 'target' | 'node' | 'worker' | 'eventId', chars: number, required: boolean): void {
  const value = span[field];
  if (value === undefined && !required) return;
  if (typeof value !== 'string' || value.length === 0 || value.length > chars) {
    throw bad(field, `${JSON.stringify(value)} is invalid: expected a string of 1 to ${chars} characters`);
  }
}

const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value) && value >= 0;

/**
 * Checks a span a store is asked to keep (stores take spans from other nodes too) and returns a
 * copy with only the span's fields, so nothing unbounded rides along. Errors name the field.
 */
export function validateSpan(span: Span): Span {
  if (typeof span !== 'object' || span === null) throw bad('', 'is not an object');
  if (!isTraceId(span.traceId)) throw bad('traceId', `${JSON.stringify(span.traceId)} is invalid: expected 32 lowercase hex digits, not all zero`);
  if (!isSpanId(span.spanId)) throw bad('spanId', `${JSON.stringify(span.spanId)} is invalid: expected 16 lowercase hex digits, not all zero`);
  if (span.parentSpanId !== undefined && !isSpanId(span.parentSpanId)) {
    throw bad('parentSpanId', `${JSON.stringify(span.parentSpanId)} is invalid: expected 16 lowercase hex digits, not all zero`);
  }
  if (!SPAN_KINDS.includes(span.kind)) throw bad('kind', `${JSON.stringify(span.kind)} is invalid: expected one of ${SPAN_KINDS.join(', ')}`);
  checkText(span, 'target', SPAN_LIMITS.targetChars, true);
  checkText(span, 'node', SPAN_LIMITS.nodeChars, true);
  checkText(span, 'worker', SPAN_LIMITS.workerChars, false);
  checkText(span, 'eventId', SPAN_LIMITS.eventIdChars, false);
  if (!isTime(span.start)) throw bad('start', `${JSON.stringify(span.start)} is invalid: expected ms since the epoch`);
  if (span.end !== undefined && (!isTime(span.end) || span.end < span.start)) throw bad('end', `${JSON.stringify(span.end)} is invalid: expected ms since the epoch, not before start`);
  if (span.attempt !== undefined && (!Number.isInteger(span.attempt) || span.attempt < 1)) throw bad('attempt', `${JSON.stringify(span.attempt)} is invalid: expected a positive integer`);
  const outcome = span.outcome;
  if (outcome !== undefined) {
    const valid =
      outcome?.status === 'ok' ||
      (outcome?.status === 'error' &&
        typeof outcome.code === 'string' &&
        outcome.code.length > 0 &&
        outcome.code.length <= SPAN_LIMITS.codeChars &&
        typeof outcome.message === 'string' &&
        outcome.message.length <= SPAN_LIMITS.messageChars);
    if (!valid) throw bad('outcome', `${JSON.stringify(outcome)} is invalid: expected {status:'ok'} or {status:'error', code (1 to ${SPAN_LIMITS.codeChars} characters), message (up to ${SPAN_LIMITS.messageChars})}`);
  }
  if ((span.end === undefined) !== (outcome === undefined)) throw bad(span.end === undefined ? 'end' : 'outcome', 'is missing: a finished span has both end and outcome');
  const copy: Span = { traceId: span.traceId, spanId: span.spanId, kind: span.kind, target: span.target, node: span.node, start: span.start };
  if (span.parentSpanId !== undefined) copy.parentSpanId = span.parentSpanId;
  if (span.worker !== undefined) copy.worker = span.worker;
  if (span.end !== undefined) copy.end = span.end;
  if (outcome !== undefined) copy.outcome = outcome.status === 'ok' ? OK : { status: 'error', code: outcome.code, message: outcome.message };
  if (span.attempt !== undefined) copy.attempt = span.attempt;
  if (span.eventId !== undefined) copy.eventId = span.eventId;
  return copy;
}
