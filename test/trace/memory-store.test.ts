import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../engine/errors/index.js';
import { MemoryTraceStore } from '../../engine/trace/store.js';
import { request, span } from './spans.js';
import { describeTraceStoreContract } from './store.contract.js';

describeTraceStoreContract('memory', async (options) => {
  const store = new MemoryTraceStore(options);
  return { store, peer: async () => store, cleanup: () => store.close() };
});

describe('MemoryTraceStore specifics', () => {
  it('evicts the least recently recorded trace past maxTraces', async () => {
    const store = new MemoryTraceStore({ maxTraces: 3 });
    const traces = [request(), request(), request()];
    for (const [i, trace] of traces.entries()) await store.record(span(trace.root, { start: i }));
    // Recording into the first trace makes the second the least recently recorded.
    await store.record(span(traces[0]!.child(), { start: 10 }));
    const fourth = request();
    await store.record(span(fourth.root, { start: 11 }));
    expect(await store.get(traces[1]!.root.traceId)).toEqual([]);
    expect(await store.get(traces[0]!.root.traceId)).toHaveLength(2);
    expect(await store.get(traces[2]!.root.traceId)).toHaveLength(1);
    expect(await store.get(fourth.root.traceId)).toHaveLength(1);
    expect(store.size).toEqual({ traces: 3, spans: 4 });
  });

  it('evicts whole traces, oldest first, past maxSpans in all', async () => {
    const store = new MemoryTraceStore({ maxSpans: 5, maxSpansPerTrace: 3 });
    const a = request();
    const b = request();
    for (let i = 0; i < 3; i++) await store.record(span(i === 0 ? a.root : a.child(), { start: i }));
    for (let i = 0; i < 2; i++) await store.record(span(i === 0 ? b.root : b.child(), { start: i }));
    expect(store.size).toEqual({ traces: 2, spans: 5 });
    await store.record(span(b.child(), { start: 9 }));
    expect(await store.get(a.root.traceId)).toEqual([]);
    expect(await store.get(b.root.traceId)).toHaveLength(3);
    expect(store.size).toEqual({ traces: 1, spans: 3 });
  });

  it('stays within its bounds under a flood of traces, recording in O(1)', async () => {
    const store = new MemoryTraceStore({ maxTraces: 1_000, maxSpans: 2_000, maxSpansPerTrace: 8 });
    const started = process.hrtime.bigint();
    for (let i = 0; i < 50_000; i++) {
      const trace = request();
      store.recordNow(span(trace.root, { start: i, end: i + 1 }));
      store.recordNow(span(trace.child(), { start: i, end: i + 1 }));
      store.recordNow(span(trace.child(), { start: i, end: i + 1 }));
    }
    const perSpanUs = Number(process.hrtime.bigint() - started) / 1_000 / 150_000;
    const size = store.size;
    expect(size.traces).toBeLessThanOrEqual(1_000);
    expect(size.spans).toBeLessThanOrEqual(2_000);
    // A hang detector, not a benchmark: linear work per record would take minutes here.
    expect(perSpanUs).toBeLessThan(1_000);
    console.log(`memory trace store: ${perSpanUs.toFixed(2)} µs per recorded span (incl. creating ids), ${size.traces} traces / ${size.spans} spans held`);
  });

  it('hands out spans nobody can change for another reader', async () => {
    const store = new MemoryTraceStore();
    const { root } = request();
    await store.record(span(root, { start: 1, end: 2 }));
    const [first] = await store.get(root.traceId);
    expect(() => Object.assign(first!, { node: 'elsewhere' })).toThrow(TypeError);
    expect((await store.get(root.traceId))[0]!.node).toBe('node-a');
  });

  it('validates its options, naming the field', () => {
    for (const [options, field] of [
      [{ ttlMs: 0 }, 'trace.ttlMs'],
      [{ maxTraces: 1.5 }, 'trace.maxTraces'],
      [{ maxSpans: -1 }, 'trace.maxSpans'],
      [{ maxSpansPerTrace: '9' }, 'trace.maxSpansPerTrace'],
      [{ maxSpans: 10, maxSpansPerTrace: 11 }, 'trace.maxSpansPerTrace'],
    ] as const) {
      let caught: unknown;
      try {
        new MemoryTraceStore(options as never);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(InvalidInputError);
      expect((caught as InvalidInputError).field).toBe(field);
    }
    expect(new MemoryTraceStore({ maxSpans: 10 }).options.maxSpansPerTrace).toBe(10);
  });
});
