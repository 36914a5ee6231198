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

/** What a step may learn only while it runs. */
export interface EndFields {
  eventId?: string;
  worker?: string;
}

export class Tracer {
  private inFlightCount = 0;
  private droppedCount = 0;
  private readonly maxInFlight: number;

  constructor(private readonly options: TracerOptions) {
    this.maxInFlight = options.maxInFlight ?? 1_000;
  }

  /** Records sent and not settled. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  /** Records dropped because too many were in flight. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Begins the step `context` names on this node; records its span as running. */
  begin(context: TraceContext, fields: Omit<SpanStart, 'node'>): ActiveSpan {
    let current = startSpan(context, { ...fields, node: this.options.node });
    let ended = false;
    // The end is sent after the start settles: a start retried through a NATS failover must not
    // land after, and overwrite, the finished span.
    const started = this.record(current);
    return {
      context,
      get span() {
        return current;
      },
      child: () => childContext(context),
      end: (outcome = { status: 'ok' }, known) => {
        if (ended) return;
        ended = true;
        const learnt = known ? startSpan(context, { ...fields, ...current, ...definedFields(known), start: current.start }) : current;
        current = finishSpan(learnt, outcome);
        this.record(current, started);
      },
    };
  }

  /** Sends one record (after `after` settles); the promise settles with it and never rejects. */
  private record(span: Span, after?: Promise<void>): Promise<void> {
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

const definedFields = (known: EndFields): EndFields => {
  const fields: EndFields = {};
  if (known.eventId) fields.eventId = known.eventId;
  if (known.worker) fields.worker = known.worker;
  return fields;
};

/** The fields every log record of a step carries (bind them on a pino child logger). */
export const traceLogFields = (context: TraceContext): { traceId: string; spanId: string } => ({ traceId: context.traceId, spanId: context.spanId });
