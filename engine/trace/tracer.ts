/**
 * What the invocation path calls: begin a step (its span recorded as running), end it once (its
 * outcome recorded), never waiting on the store and never failing a request because the store
 * did. Records in flight are bounded: past `maxInFlight` (a slow or unreachable NATS) spans are
 * dropped and counted instead of piling up in memory.
 */
import { toEngineError, type EngineError } from '../errors/index.js';
import { childContext, type TraceContext } from './context.js';
import { finishSpan, startSpan, type Span, type SpanOutcome, type SpanStart } from './span.js';
import type { TraceStore } from './types.js';

export interface TracerOptions {
  store: TraceStore;
  /** This engine node's id, written into every span. */
  node: string;
  /** Records sent to the store and not yet settled; past it new records are dropped. Default 1,000. */
  maxInFlight?: number;
  /**
   * Steps are recorded as running only once they have run this long (0, the default: at once),
   * so a short step costs one record, not two; a crashed node's steps still show as running.
   */
  startDelayMs?: number;
  /** Told of each failed record (for a rate-limited warning); the request goes on regardless. */
  onError?: (error: EngineError, span: Span) => void;
}

export interface ActiveSpan {
  readonly context: TraceContext;
  /** The span as recorded last (running until ended). */
  readonly span: Span;
  /** The context of a step this one causes (a call, an emit). */
  child(): TraceContext;
  /**
   * Ends the step with its outcome, or the error it failed with; only the first end counts.
   * `known` adds what was learnt while it ran (the event id an enqueue got, the worker).
   */
  end(outcome?: SpanOutcome | { error: unknown }, known?: EndFields): void;
}

const SETTLED: Promise<void> = Promise.resolve();

/** One begun step (a class, not closures: one object per step on the hot path). */
class Step implements ActiveSpan {
  ended = false;
  /** The start's record, once sent; the end is sent after it settles. */
  private started: Promise<void> | undefined;

  constructor(
    private readonly tracer: Tracer,
    readonly context: TraceContext,
    private current: Span,
  ) {}

  get span(): Span {
    return this.current;
  }

  child(): TraceContext {
    return childContext(this.context);
  }

  sendStart(): void {
    this.started = this.tracer.record(this.current);
  }

  end(outcome: SpanOutcome | { error: unknown } = OK_OUTCOME, known?: EndFields): void {
    if (this.ended) return;
    this.ended = true;
    const span = this.current;
    const learnt = known
      ? startSpan(this.context, { kind: span.kind, target: span.target, node: span.node, worker: known.worker || span.worker, attempt: span.attempt, eventId: known.eventId || span.eventId, start: span.start })
      : span;
    this.current = finishSpan(learnt, outcome);
    // A start not sent yet is not sent at all: the finished span replaces it. The end is sent after
    // a sent start settles: a start retried through a NATS failover must not overwrite it.
    this.tracer.record(this.current, this.started);
  }
}

const OK_OUTCOME: SpanOutcome = Object.freeze({ status: 'ok' });

/** What a step may learn only while it runs. */
export interface EndFields {
  eventId?: string;
  worker?: string;
}

export class Tracer {
  private inFlightCount = 0;
  private droppedCount = 0;
  private readonly maxInFlight: number;
  private readonly startDelayMs: number;
  private pendingStarts: Step[] = [];
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: TracerOptions) {
    this.maxInFlight = options.maxInFlight ?? 1_000;
    this.startDelayMs = options.startDelayMs ?? 0;
  }

  /** Records sent and not settled. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  /** Records dropped because too many were in flight. */
  get dropped(): number {
    return this.droppedCount;
  }

  /**
   * Begins the step `context` names on this node; records its span as running (at once, or with
   * `startDelayMs` at the next flush, unless it has ended by then).
   */
  begin(context: TraceContext, fields: Omit<SpanStart, 'node'>): ActiveSpan {
    const span = startSpan(context, { kind: fields.kind, target: fields.target, node: this.options.node, worker: fields.worker, attempt: fields.attempt, eventId: fields.eventId, start: fields.start });
    const step = new Step(this, context, span);
    if (this.startDelayMs > 0) this.deferStart(step);
    else step.sendStart();
    return step;
  }

  /** Sends the running spans of steps begun more than startDelayMs ago and not ended. */
  flushStarts(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const starts = this.pendingStarts;
    this.pendingStarts = [];
    for (const pending of starts) if (!pending.ended) pending.sendStart();
  }

  private deferStart(pending: Step): void {
    this.pendingStarts.push(pending);
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => this.flushStarts(), this.startDelayMs);
      this.flushTimer.unref?.();
    }
  }

  /** Sends one record (after `after` settles); the promise settles with it and never rejects. @internal */
  record(span: Span, after?: Promise<void>): Promise<void> {
    const store = this.options.store;
    if (store.recordNow) {
      // A synchronous store (memory) records at once: nothing is in flight, no promise is made.
      try {
        store.recordNow(span);
      } catch (error) {
        this.options.onError?.(toEngineError(error), span);
      }
      return SETTLED;
    }
    if (this.inFlightCount >= this.maxInFlight) {
      this.droppedCount++;
      return Promise.resolve();
    }
    this.inFlightCount++;
    const send = async () => {
      if (after) await after;
      await this.options.store.record(span);
    };
    return send().then(
      () => {
        this.inFlightCount--;
      },
      (error: unknown) => {
        this.inFlightCount--;
        this.options.onError?.(toEngineError(error), span);
      },
    );
  }
}

/** The fields every log record of a step carries (bind them on a pino child logger). */
export const traceLogFields = (context: TraceContext): { traceId: string; spanId: string } => ({ traceId: context.traceId, spanId: context.spanId });
