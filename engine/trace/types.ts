/** The TraceStore seam: where spans of every node are kept for `cocaine-deploy trace ID`. */
import type { Span } from './span.js';
import type { TraceTree } from './tree.js';

export interface TraceStore {
  /** `memory` or `nats`. */
  readonly kind: string;
  /**
   * Keeps a span (validated; see validateSpan). Recording a span id again replaces it: a step is
   * recorded when it starts and again when it ends. Past the per-trace bound a new span is dropped
   * (and counted); an update of a kept one never is.
   */
  record(span: Span): Promise<void>;
  /** record(), synchronously, where the store can (memory): the Tracer then allocates no promise per span. Throws what record() rejects with. */
  recordNow?(span: Span): void;
  /** The trace's spans, ordered by start (then span id); [] when unknown or expired. */
  get(traceId: string): Promise<Span[]>;
  /** The trace's spans as a tree (see buildTree); undefined when unknown or expired. */
  tree(traceId: string): Promise<TraceTree | undefined>;
  close(): Promise<void>;
}

export interface TraceStoreOptions {
  /** How long a trace is kept: memory, since its last span was recorded; NATS, each span since it was. */
  ttlMs?: number;
  /** Spans kept per trace; later new spans of that trace are dropped and counted. */
  maxSpansPerTrace?: number;
}

export interface MemoryTraceStoreOptions extends TraceStoreOptions {
  /** Traces kept; past it the least recently recorded trace is evicted whole. */
  maxTraces?: number;
  /** Spans kept over all traces; past it least recently recorded traces are evicted whole. */
  maxSpans?: number;
}
