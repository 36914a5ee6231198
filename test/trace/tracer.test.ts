import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { EngineError, HandlerError } from '../../engine/errors/index.js';
import { newRootContext } from '../../engine/trace/context.js';
import { NatsTraceStore } from '../../engine/trace/nats-store.js';
import type { Span } from '../../engine/trace/span.js';
import { MemoryTraceStore } from '../../engine/trace/store.js';
import { traceLogFields, Tracer } from '../../engine/trace/tracer.js';
import { startNatsServer, stopAllNatsServers } from '../helpers/nats-server.js';

afterAll(stopAllNatsServers);

async function settled(tracer: Tracer, timeoutMs = 60_000): Promise<void> {
  const started = Date.now();
  while (tracer.inFlight > 0) {
    if (Date.now() - started > timeoutMs) throw new Error(`${tracer.inFlight} records still in flight after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('Tracer', () => {
  it('records a step as running when it begins and with its outcome when it ends (once)', async () => {
    const store = new MemoryTraceStore();
    const tracer = new Tracer({ store, node: 'node-a' });
    const root = newRootContext();
    const invoke = tracer.begin(root, { kind: 'invoke', target: 'shop@buy', worker: 'w1' });
    expect(await store.get(root.traceId)).toEqual([expect.objectContaining({ spanId: root.spanId, node: 'node-a', worker: 'w1', kind: 'invoke' })]);
    expect((await store.get(root.traceId))[0]!.end).toBeUndefined();
    const call = tracer.begin(invoke.child(), { kind: 'call', target: 'stock@reserve' });
    call.end({ error: new HandlerError('out of stock') });
    call.end({ status: 'ok' });
    invoke.end();
    await settled(tracer);
    const tree = (await store.tree(root.traceId))!;
    expect(tree.root.span).toMatchObject({ spanId: root.spanId, outcome: { status: 'ok' } });
    expect(tree.root.children.map((node) => node.span)).toEqual([
      expect.objectContaining({ spanId: call.context.spanId, parentSpanId: root.spanId, outcome: { status: 'error', code: 'handler_error', message: 'out of stock' } }),
    ]);
    expect(call.span.outcome).toMatchObject({ code: 'handler_error' });
    expect(traceLogFields(call.context)).toEqual({ traceId: root.traceId, spanId: call.context.spanId });
  });

  it('reports a failed record and carries on', async () => {
    const store = new MemoryTraceStore();
    const failures: Array<[EngineError, Span]> = [];
    const tracer = new Tracer({ store, node: 'node-a', onError: (error, span) => failures.push([error, span]) });
    await store.close();
    const root = newRootContext();
    const step = tracer.begin(root, { kind: 'invoke', target: 'a@b' });
    step.end();
    await settled(tracer);
    expect(failures.map(([error, span]) => [error.code, span.spanId, span.outcome?.status])).toEqual([
      ['storage_error', root.spanId, undefined],
      ['storage_error', root.spanId, 'ok'],
    ]);
  });

  it('over NATS: bounds the records in flight, and a step ended through a server restart ends finished', async () => {
    const server = await startNatsServer();
    const store = await NatsTraceStore.open({ servers: server.url, prefix: `t${randomBytes(5).toString('hex')}` });
    try {
      const tracer = new Tracer({ store, node: 'node-a', maxInFlight: 50 });
      const flood = newRootContext();
      for (let i = 0; i < 200; i++) tracer.begin(i === 0 ? flood : { ...newRootContext(), traceId: flood.traceId }, { kind: 'call', target: 'a@b' });
      expect(tracer.inFlight).toBe(50);
      expect(tracer.dropped).toBe(150);
      await settled(tracer);
      expect(await store.get(flood.traceId)).toHaveLength(50);

      const roots = Array.from({ length: 20 }, () => newRootContext());
      const steps = roots.map((root) => tracer.begin(root, { kind: 'invoke', target: 'shop@buy' }));
      const restarting = server.restart();
      for (const step of steps) step.end();
      await restarting;
      await settled(tracer);
      for (const root of roots) expect((await store.get(root.traceId)).map((span) => span.outcome)).toEqual([{ status: 'ok' }]);
    } finally {
      await store.close();
      await server.stop();
    }
  });
});
