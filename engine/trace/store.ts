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
  /** Its spans in recording order (an array: most traces have one or two spans; at most maxSpansPerTrace). */
  spans: Span[];
  /** ms since the epoch of the last record: the trace expires ttlMs after it. */
  touched: number;
  dropped: number;
  /** The sequence number of its last record: its live place in the recording order. */
  seq: number;
}

/**
 * Traces by id, and their recording order as a queue of (trace id, sequence number): a record
 * appends its trace with a new number, so the trace's older places go stale and are skipped when
 * they reach the front. Every bound evicts from the front: the TTL (the front trace is the least
 * recently recorded), the trace count and the total span count. Recording is O(1) amortised: each
 * place is skipped or evicted once, and the queue is compacted when stale places outnumber live
 * traces. (A Map re-inserted on every record would do the same, but V8 iterates a Map's deleted
 * slots, so taking its first key after many re-insertions costs up to its capacity.)
 * Memory is bounded by `maxSpans` spans, each with bounded text (SPAN_LIMITS): measured at about
 * 410 bytes of heap for a typical span and 1.4 KB for one with every field at its bound.
 */
export class MemoryTraceStore implements TraceStore {
  readonly kind = 'memory';
  readonly options: ResolvedMemoryTraceStoreOptions;
  private readonly traces = new Map<string, TraceEntry>();
  private orderIds: string[] = [];
  private orderSeqs: number[] = [];
  private head = 0;
  private nextSeq = 0;
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
    if (!entry) {
      entry = { spans: [], touched: now, dropped: 0, seq: 0 };
      this.traces.set(kept.traceId, entry);
    }
    this.touch(kept.traceId, entry, now);
    const index = indexOfSpan(entry.spans, kept.spanId);
    if (index >= 0) entry.spans[index] = kept;
    else if (entry.spans.length >= this.options.maxSpansPerTrace) entry.dropped++;
    else {
      entry.spans.push(kept);
      this.spanCount++;
    }
    while (this.traces.size > this.options.maxTraces || (this.spanCount > this.options.maxSpans && this.traces.size > 1)) this.evictOldest();
  }

  async get(traceId: string): Promise<Span[]> {
    const entry = this.entry(traceId);
    return entry ? sortedSpans(entry.spans) : [];
  }

  async tree(traceId: string): Promise<TraceTree | undefined> {
    const entry = this.entry(traceId);
    return entry && buildTree(traceId, [...entry.spans], entry.dropped);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.traces.clear();
    this.orderIds = [];
    this.orderSeqs = [];
    this.head = 0;
    this.spanCount = 0;
  }

  private entry(traceId: string): TraceEntry | undefined {
    if (this.closed) throw closedTraceStore(this.kind);
    validateTraceId(traceId);
    this.expire(Date.now());
    return this.traces.get(traceId);
  }

  /** Moves the trace to the end of the recording order. */
  private touch(traceId: string, entry: TraceEntry, now: number): void {
    entry.touched = now;
    entry.seq = ++this.nextSeq;
    this.orderIds.push(traceId);
    this.orderSeqs.push(entry.seq);
    const queued = this.orderIds.length - this.head;
    if (queued > 2 * this.traces.size + 1024) this.compact();
  }

  /** Drops the stale places (a trace recorded again since) from the order. */
  private compact(): void {
    const ids: string[] = [];
    const seqs: number[] = [];
    for (let i = this.head; i < this.orderIds.length; i++) {
      const id = this.orderIds[i]!;
      if (this.traces.get(id)?.seq === this.orderSeqs[i]) {
        ids.push(id);
        seqs.push(this.orderSeqs[i]!);
      }
    }
    this.orderIds = ids;
    this.orderSeqs = seqs;
    this.head = 0;
  }

  /** The least recently recorded trace (stale places before it are passed). */
  private oldest(): [string, TraceEntry] | undefined {
    while (this.head < this.orderIds.length) {
      const id = this.orderIds[this.head]!;
      const entry = this.traces.get(id);
      if (entry && entry.seq === this.orderSeqs[this.head]) return [id, entry];
      this.head++;
    }
    return undefined;
  }

  private expire(now: number): void {
    for (;;) {
      const oldest = this.oldest();
      if (!oldest || now - oldest[1].touched < this.options.ttlMs) return;
      this.evictOldest();
    }
  }

  private evictOldest(): void {
    const oldest = this.oldest();
    if (!oldest) return;
    this.spanCount -= oldest[1].spans.length;
    this.traces.delete(oldest[0]);
    this.head++;
    // The consumed front is released now and then, so the arrays do not only grow.
    if (this.head > 4096 && this.head * 2 > this.orderIds.length) {
      this.orderIds = this.orderIds.slice(this.head);
      this.orderSeqs = this.orderSeqs.slice(this.head);
      this.head = 0;
    }
  }
}

/** The span's place in a trace's spans, searched from the newest (an end follows its start closely). */
function indexOfSpan(spans: readonly Span[], spanId: string): number {
  for (let i = spans.length - 1; i >= 0; i--) if (spans[i]!.spanId === spanId) return i;
  return -1;
}

/** Stored spans are shared with readers: frozen, so no reader changes what another sees. */
function freezeSpan(span: Span): Span {
  if (span.outcome) Object.freeze(span.outcome);
  return Object.freeze(span);
}

export function sortedSpans(spans: Iterable<Span>): Span[] {
  return [...spans].sort((a, b) => a.start - b.start || (a.spanId < b.spanId ? -1 : a.spanId > b.spanId ? 1 : 0));
}
