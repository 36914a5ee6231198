/** Builds spans of a trace for the trace tests: real contexts (random ids), explicit times. */
import { childContext, newRootContext, type TraceContext } from '../../engine/trace/context.js';
import { finishSpan, SPAN_LIMITS, startSpan, type Span, type SpanKind } from '../../engine/trace/span.js';

export interface SpanSpec {
  kind?: SpanKind;
  target?: string;
  node?: string;
  start: number;
  end?: number;
  error?: { code: string; message: string };
}

/** A span of `context`; finished (ok, or the error given) when `end` is given. */
export function span(context: TraceContext, spec: SpanSpec): Span {
  const open = startSpan(context, { kind: spec.kind ?? 'call', target: spec.target ?? 'app@event', node: spec.node ?? 'node-a', start: spec.start });
  if (spec.end === undefined) return open;
  return finishSpan(open, spec.error ? { status: 'error', ...spec.error } : { status: 'ok' }, spec.end);
}

/** A request's contexts: the root, and children made on demand. */
export function request(): { root: TraceContext; child(parent?: TraceContext): TraceContext } {
  const root = newRootContext();
  return { root, child: (parent = root) => childContext(parent) };
}

/** Every text field at its bound, every character one that JSON escapes as \u00XX (6 bytes). */
export function worstSpan(): Span {
  const text = (chars: number) => '\u0001'.repeat(chars);
  const context = { ...newRootContext(), parentSpanId: 'abcdefabcdefabcd' };
  const open = startSpan(context, {
    kind: 'session',
    target: text(SPAN_LIMITS.targetChars),
    node: text(SPAN_LIMITS.nodeChars),
    worker: text(SPAN_LIMITS.workerChars),
    eventId: text(SPAN_LIMITS.eventIdChars),
    attempt: Number.MAX_SAFE_INTEGER,
    start: Number.MAX_SAFE_INTEGER - 1,
  });
  return finishSpan(open, { status: 'error', code: text(SPAN_LIMITS.codeChars), message: text(SPAN_LIMITS.messageChars) }, Number.MAX_SAFE_INTEGER);
}
