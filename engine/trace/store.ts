/**
 * The trace store seam and its in-memory backend: one node's recent traces, bounded by count, by
 * spans per trace and in all, and by age.
 */
import { EngineError, InvalidInputError } from '../errors/index.js';
import { isTraceId } from './context.js';
import { resolveMemoryTraceStoreOptions, type ResolvedMemoryTraceStoreOptions } from './options.js';
import { validateSpan, type Span } from './span.js';
import { buildTree, type TraceTree } from './tree.js';
import type { MemoryTraceStoreOptions, TraceStore } from './types.js';

export type { MemoryTraceStoreOptions, TraceStore, TraceStoreOptions } from './types.js';

/** Checks a trace id asked for (it becomes part of keys and subjects); errors name the field. */
export function validateTraceId(traceId: string): string {
  if (!isTraceId(traceId)) {
    throw new InvalidInputError('invalid_argument', `trace id ${JSON.stringify(traceId)} is invalid: expected 32 lowercase hex digits, not all zero`, { field: 'traceId' });
  }
  return traceId;
}

export const closedTraceStore = (kind: string): EngineError => new EngineError('storage_error', `the ${kind} trace store is closed`);

interface TraceEntry {
  spans: Map<string, Span>;
  /** ms since the epoch of the last record: the trace expires ttlMs after it. */
  touched: number;
  dropped: number;
}

/**
 * Traces in a Map kept in least-recently-recorded order (a record moves its trace to the end), so
 * every bound evicts from the front: the TTL (the front trace is the oldest touched), the trace
 * count and the total span count. Recording is O(1) amortised: each trace is evicted at most once.
 * Memory is bounded by `maxSpans` spans, each with bounded text (SPAN_LIMITS): measured at about
 * 410 bytes of heap for a typical span and 1.4 KB for one with every field at its bound.
 */
export class MemoryTraceStore implements TraceStore {
  readonly kind = 'memory';
  readonly options: ResolvedMemoryTraceStoreOptions;
  private readonly traces = new Map<string, TraceEntry>();
  private spanCount = 0;
  private closed = false;

  constructor(options: MemoryTraceStoreOptions = {}) {
    this.options = resolveMemoryTraceStoreOptions(options);
  }

  /** Traces and spans held now (after dropping expired ones). */
  get size(): { traces: number; spans: number } {
    this.expire(Date.now());
    return { traces: this.traces.size, spans: this.spanCount };
  }

  async record(span: Span): Promise<void> {
    this.recordNow(span);
  }

  /** record(), synchronously: for a hot path that must not allocate a promise per span. */
  recordNow(span: Span): void {
    if (this.closed) throw closedTraceStore(this.kind);
    const kept = freezeSpan(validateSpan(span));
    const now = Date.now();
    this.expire(now);
    let entry = this.traces.get(kept.traceId);
    if (entry) this.traces.delete(kept.traceId);
    else entry = { spans: new Map(), touched: now, dropped: 0 };
    entry.touched = now;
    this.traces.set(kept.traceId, entry);
    if (entry.spans.has(kept.spanId)) entry.spans.set(kept.spanId, kept);
    else if (entry.spans.size >= this.options.maxSpansPerTrace) entry.dropped++;
    else {
      entry.spans.set(kept.spanId, kept);
      this.spanCount++;
    }
    while (this.traces.size > this.options.maxTraces || (this.spanCount > this.options.maxSpans && this.traces.size > 1)) this.evictOldest();
  }

  async get(traceId: string): Promise<Span[]> {
    const entry = this.entry(traceId);
    return entry ? sortedSpans(entry.spans.values()) : [];
  }

  async tree(traceId: string): Promise<TraceTree | undefined> {
    const entry = this.entry(traceId);
    return entry && buildTree(traceId, [...entry.spans.values()], entry.dropped);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.traces.clear();
    this.spanCount = 0;
  }

  private entry(traceId: string): TraceEntry | undefined {
    if (this.closed) throw closedTraceStore(this.kind);
    validateTraceId(traceId);
    this.expire(Date.now());
    return this.traces.get(traceId);
  }

  private expire(now: number): void {
    for (const [, entry] of this.traces) {
      if (now - entry.touched < this.options.ttlMs) return;
      this.evictOldest();
    }
  }

  private evictOldest(): void {
    const oldest = this.traces.keys().next();
    if (oldest.done) return;
    this.spanCount -= this.traces.get(oldest.value)!.spans.size;
    this.traces.delete(oldest.value);
  }
}

/** Stored spans are shared with readers: frozen, so no reader changes what another sees. */
function freezeSpan(span: Span): Span {
  if (span.outcome) Object.freeze(span.outcome);
  return Object.freeze(span);
}

export function sortedSpans(spans: Iterable<Span>): Span[] {
  return [...spans].sort((a, b) => a.start - b.start || (a.spanId < b.spanId ? -1 : a.spanId > b.spanId ? 1 : 0));
}
