/**
 * The trace store on a NATS KV bucket (`<prefix>-traces`) shared by every node, so the spans one
 * request leaves on several nodes form one trace. One key per span, `<traceId>.<spanId>` (history
 * 1: recording a span again replaces it); `get` lists the trace's keys from the stream leader and
 * reads them. Bounds: the bucket's max age (each span is kept `ttlMs` after it was last recorded),
 * its size (`maxBytes`, discarding the oldest spans when full, never refusing new ones), the value
 * size, and `maxSpansPerTrace` (checked per node when recording, and when reading).
 */
import { Kvm, type KV } from '@nats-io/kv';
import { DiscardPolicy, jetstream, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { EngineError, InvalidInputError } from '../errors/index.js';
import { connectNats, parseNatsServers } from '../nats/connection.js';
import { retryNats } from '../nats/retry.js';
import { positiveInteger, TRACE_STORE_DEFAULTS } from './options.js';
import { MAX_SPAN_JSON_BYTES, validateSpan, type Span } from './span.js';
import { closedTraceStore, sortedSpans, validateTraceId } from './store.js';
import { buildTree, type TraceTree } from './tree.js';
import type { TraceStore, TraceStoreOptions } from './types.js';

export interface NatsTraceStoreOptions extends TraceStoreOptions {
  /** One url, a comma-separated list, or an array: any members of one NATS cluster. */
  servers: string | string[];
  /** The bucket is `<prefix>-traces` (the prefix of the engine's other buckets). */
  prefix?: string;
  /** JetStream replicas of the bucket. */
  replicas?: number;
  /** The bucket's size bound in bytes; when full, the oldest spans are discarded. */
  maxBytes?: number;
}

export interface ResolvedNatsTraceStoreOptions {
  servers: string[];
  prefix: string;
  replicas: number;
  ttlMs: number;
  maxSpansPerTrace: number;
  maxBytes: number;
}

export const NATS_TRACE_STORE_DEFAULTS = Object.freeze({ prefix: 'cocaine', replicas: 1, maxBytes: 64 * 1024 * 1024 });

const REQUEST_TIMEOUT_MS = 2_000;
/** Traces whose span ids this node remembers to hold each to maxSpansPerTrace when recording. */
const COUNTED_TRACES = 1_000;
/** Span reads in flight at once for one `get`. */
const READ_CONCURRENCY = 64;

export function resolveNatsTraceStoreOptions(options: NatsTraceStoreOptions): ResolvedNatsTraceStoreOptions {
  const servers = parseNatsServers(options.servers ?? '');
  const prefix = options.prefix ?? NATS_TRACE_STORE_DEFAULTS.prefix;
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) {
    throw new InvalidInputError('invalid_argument', `trace option prefix ${JSON.stringify(prefix)} is invalid: expected 1 to 32 letters, digits, '_' or '-'`, { field: 'trace.prefix' });
  }
  return {
    servers,
    prefix,
    replicas: positiveInteger('replicas', options.replicas, NATS_TRACE_STORE_DEFAULTS.replicas, 5),
    ttlMs: positiveInteger('ttlMs', options.ttlMs, TRACE_STORE_DEFAULTS.ttlMs),
    maxSpansPerTrace: positiveInteger('maxSpansPerTrace', options.maxSpansPerTrace, TRACE_STORE_DEFAULTS.maxSpansPerTrace),
    maxBytes: positiveInteger('maxBytes', options.maxBytes, NATS_TRACE_STORE_DEFAULTS.maxBytes),
  };
}

export class NatsTraceStore implements TraceStore {
  readonly kind = 'nats';
  readonly location: string;
  private readonly stream: string;
  private readonly subjectPrefix: string;
  /** Span ids recorded by this node per recent trace (least recently recorded first). */
  private readonly recorded = new Map<string, Set<string>>();
  private readonly dropped = new Map<string, number>();
  private closed = false;

  private constructor(
    readonly options: ResolvedNatsTraceStoreOptions,
    bucket: string,
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly kv: KV,
  ) {
    this.location = options.servers.join(',');
    this.stream = `KV_${bucket}`;
    this.subjectPrefix = `$KV.${bucket}.`;
  }

  static async open(options: NatsTraceStoreOptions): Promise<NatsTraceStore> {
    const resolved = resolveNatsTraceStoreOptions(options);
    const bucket = `${resolved.prefix}-traces`;
    const nc = await connectNats(resolved.servers, { name: `cocaine-engine traces ${resolved.prefix}` });
    try {
      const js = jetstream(nc, { timeout: REQUEST_TIMEOUT_MS });
      const kv = await retryNats(() =>
        new Kvm(js).create(bucket, {
          replicas: resolved.replicas,
          history: 1,
          ttl: resolved.ttlMs,
          max_bytes: resolved.maxBytes,
          maxValueSize: MAX_SPAN_JSON_BYTES,
          allow_direct: false,
        }),
      );
      const jsm = await js.jetstreamManager();
      // KV buckets refuse writes when full; a trace store drops its oldest spans instead. A bucket
      // made by another node with other bounds takes this node's (the last opened wins).
      const stream = `KV_${bucket}`;
      const { config } = await retryNats(() => jsm.streams.info(stream));
      const ttlNanos = resolved.ttlMs * 1_000_000;
      if (config.discard !== DiscardPolicy.Old || config.max_age !== ttlNanos || config.max_bytes !== resolved.maxBytes) {
        const duplicate_window = Math.min(config.duplicate_window || ttlNanos, ttlNanos);
        await retryNats(() => jsm.streams.update(stream, { ...config, discard: DiscardPolicy.Old, max_age: ttlNanos, max_bytes: resolved.maxBytes, duplicate_window }));
      }
      return new NatsTraceStore(resolved, bucket, nc, jsm, kv);
    } catch (error) {
      await nc.close().catch(() => undefined);
      throw wrap(`opening bucket "${bucket}" at ${resolved.servers.join(',')}`, error);
    }
  }

  async record(span: Span): Promise<void> {
    this.checkOpen();
    const kept = validateSpan(span);
    if (!this.admit(kept)) return;
    await guard(`recording span ${kept.spanId} of trace ${kept.traceId}`, () => this.kv.put(`${kept.traceId}.${kept.spanId}`, JSON.stringify(kept)));
  }

  async get(traceId: string): Promise<Span[]> {
    return (await this.read(traceId)).spans;
  }

  async tree(traceId: string): Promise<TraceTree | undefined> {
    const { spans, dropped } = await this.read(traceId);
    return buildTree(traceId, spans, dropped);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.recorded.clear();
    await this.nc.drain().catch(() => undefined);
  }

  /** Whether this node may record the span: an update, or a new span within the trace's bound. */
  private admit(span: Span): boolean {
    let ids = this.recorded.get(span.traceId);
    if (ids) this.recorded.delete(span.traceId);
    else ids = new Set();
    this.recorded.set(span.traceId, ids);
    if (this.recorded.size > COUNTED_TRACES) {
      const oldest = this.recorded.keys().next().value!;
      this.recorded.delete(oldest);
      this.dropped.delete(oldest);
    }
    if (ids.has(span.spanId)) return true;
    if (ids.size >= this.options.maxSpansPerTrace) {
      this.dropped.set(span.traceId, (this.dropped.get(span.traceId) ?? 0) + 1);
      return false;
    }
    ids.add(span.spanId);
    return true;
  }

  /** The trace's spans, the earliest maxSpansPerTrace of them; the rest (and this node's drops) counted. */
  private async read(traceId: string): Promise<{ spans: Span[]; dropped: number }> {
    this.checkOpen();
    validateTraceId(traceId);
    const what = `reading trace ${traceId}`;
    const info = await guard(what, () => this.jsm.streams.info(this.stream, { subjects_filter: `${this.subjectPrefix}${traceId}.*` }));
    const keys = Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(this.subjectPrefix.length));
    const spans: Span[] = [];
    for (let i = 0; i < keys.length; i += READ_CONCURRENCY) {
      const entries = await guard(what, () => Promise.all(keys.slice(i, i + READ_CONCURRENCY).map((key) => this.kv.get(key))));
      for (const entry of entries) {
        if (entry === null || entry.operation !== 'PUT' || entry.length === 0) continue;
        const span = parseSpan(entry.string());
        if (span && span.traceId === traceId) spans.push(span);
      }
    }
    const sorted = sortedSpans(spans);
    const kept = sorted.slice(0, this.options.maxSpansPerTrace);
    return { spans: kept, dropped: sorted.length - kept.length + (this.dropped.get(traceId) ?? 0) };
  }

  private checkOpen(): void {
    if (this.closed) throw closedTraceStore(this.kind);
  }
}

/** A stored span, or undefined for a value that is not one (written by something else). */
function parseSpan(text: string): Span | undefined {
  try {
    return validateSpan(JSON.parse(text) as Span);
  } catch {
    return undefined;
  }
}

function wrap(what: string, error: unknown): EngineError {
  if (error instanceof EngineError) return error;
  const message = (error as Error)?.message ?? String(error);
  return new EngineError('storage_error', `NATS trace store: ${what} failed: ${message}`, { cause: error });
}

async function guard<T>(what: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await retryNats(operation);
  } catch (error) {
    throw wrap(what, error);
  }
}
