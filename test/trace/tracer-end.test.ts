import { describe, expect, it } from 'vitest';
import { newRootContext, withTraceHeaders } from '../../engine/trace/context.js';
import { MemoryTraceStore } from '../../engine/trace/store.js';
import { Tracer } from '../../engine/trace/tracer.js';

describe('ActiveSpan.end with what the step learnt', () => {
  it('adds the event id and worker known only at the end; the rest of the span is kept', async () => {
    const store = new MemoryTraceStore();
    const tracer = new Tracer({ store, node: 'node-a' });
    const root = newRootContext();
    const emit = tracer.begin(root, { kind: 'emit', target: 'mail@send' });
    const started = emit.span.start;
    emit.end({ status: 'ok' }, { eventId: 'ev-1', worker: 'w7' });
    emit.end({ status: 'ok' }, { eventId: 'ignored' });
    while (tracer.inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const [span] = await store.get(root.traceId);
    expect(span).toMatchObject({ spanId: root.spanId, kind: 'emit', target: 'mail@send', node: 'node-a', start: started, eventId: 'ev-1', worker: 'w7', outcome: { status: 'ok' } });
  });
});

describe('withTraceHeaders', () => {
  it('replaces trace headers in any spelling and keeps the others', () => {
    const context = newRootContext();
    const out = withTraceHeaders({ TraceParent: 'x', TRACESTATE: 'y', keep: 'me' }, context);
    expect(out).toEqual({ keep: 'me', traceparent: `00-${context.traceId}-${context.spanId}-03` });
  });
});

describe('Tracer with startDelayMs (as the engine runs it)', () => {
  it('records a long step as running after the delay; a short one only finished, never overwritten by a late start', async () => {
    const store = new MemoryTraceStore();
    const tracer = new Tracer({ store, node: 'node-a', startDelayMs: 30 });
    const long = newRootContext();
    const short = newRootContext();
    const longStep = tracer.begin(long, { kind: 'invoke', target: 'slow@op' });
    const shortStep = tracer.begin(short, { kind: 'invoke', target: 'fast@op' });
    expect(await store.get(long.traceId)).toEqual([]);
    shortStep.end();
    expect(await store.get(short.traceId)).toEqual([expect.objectContaining({ spanId: short.spanId, outcome: { status: 'ok' } })]);
    const started = Date.now();
    while ((await store.get(long.traceId)).length === 0) {
      if (Date.now() - started > 10_000) throw new Error('the long step was never recorded as running');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const [running] = await store.get(long.traceId);
    expect(running).toMatchObject({ spanId: long.spanId, target: 'slow@op' });
    expect(running!.end).toBeUndefined();
    // Past the flush the short step is still the finished one.
    expect(await store.get(short.traceId)).toEqual([expect.objectContaining({ spanId: short.spanId, outcome: { status: 'ok' } })]);
    longStep.end({ error: new Error('late') });
    expect((await store.get(long.traceId))[0]).toMatchObject({ outcome: { status: 'error', code: 'internal', message: 'late' } });
  });
});
