/**
 * The behaviour every TraceStore backend must have; each backend's test calls
 * describeTraceStoreContract with its own factory (memory, nats via a real nats-server).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EngineError, InvalidInputError } from '../../engine/errors/index.js';
import { finishSpan, type Span } from '../../engine/trace/span.js';
import type { TraceStore, TraceStoreOptions } from '../../engine/trace/types.js';
import { request, span } from './spans.js';

export interface TraceStoreFixture {
  store: TraceStore;
  /**
   * A second handle on the same traces, as a second node has: the same store (memory, one node)
   * or a second connection (a shared backend).
   */
  peer(): Promise<TraceStore>;
  /** Closes every handle. */
  cleanup(): Promise<void>;
}

async function rejection(promise: Promise<unknown>): Promise<EngineError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EngineError);
  return error as EngineError;
}

/** Polls `check` until it holds; fails after `timeoutMs` (generous: it detects hangs, not speed). */
async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function describeTraceStoreContract(name: string, factory: (options?: TraceStoreOptions) => Promise<TraceStoreFixture>): void {
  describe(`TraceStore contract: ${name}`, () => {
    const fixtures: TraceStoreFixture[] = [];
    const open = async (options?: TraceStoreOptions): Promise<TraceStoreFixture> => {
      const fixture = await factory(options);
      fixtures.push(fixture);
      return fixture;
    };

    afterEach(async () => {
      await Promise.all(fixtures.splice(0).map((fixture) => fixture.cleanup()));
    });

    it('keeps recorded spans and returns them ordered by start; a span recorded again is replaced', async () => {
      const { store } = await open();
      const { root, child } = request();
      const call = child();
      const openCall = span(call, { start: 1_010 });
      await store.record(span(root, { kind: 'invoke', start: 1_000 }));
      await store.record(openCall);
      expect(await store.get(root.traceId)).toEqual([span(root, { kind: 'invoke', start: 1_000 }), openCall]);
      const finished = finishSpan(openCall, { status: 'error', code: 'handler_error', message: 'no stock' }, 1_040);
      await store.record(finished);
      await store.record(span(root, { kind: 'invoke', start: 1_000, end: 1_100 }));
      const spans = await store.get(root.traceId);
      expect(spans).toEqual([span(root, { kind: 'invoke', start: 1_000, end: 1_100 }), finished]);
    });

    it('answers nothing for an unknown trace and keeps traces apart', async () => {
      const { store } = await open();
      const one = request();
      const two = request();
      await store.record(span(one.root, { start: 1 }));
      await store.record(span(two.root, { start: 2 }));
      expect(await store.get(request().root.traceId)).toEqual([]);
      expect(await store.tree(request().root.traceId)).toBeUndefined();
      expect((await store.get(one.root.traceId)).map((s) => s.spanId)).toEqual([one.root.spanId]);
      expect((await store.get(two.root.traceId)).map((s) => s.spanId)).toEqual([two.root.spanId]);
    });

    it('builds the tree of a trace whose spans were recorded through two handles (two nodes)', async () => {
      const fixture = await open();
      const peer = await fixture.peer();
      const remote = request();
      const invoke = remote.child();
      const call = remote.child(invoke);
      const emit = remote.child(call);
      const lost = remote.child(invoke);
      const orphan = remote.child(lost);
      await fixture.store.record(span(invoke, { kind: 'invoke', start: 100, end: 200, node: 'node-a' }));
      await peer.record(span(call, { start: 110, end: 150, node: 'node-b' }));
      await fixture.store.record(span(emit, { kind: 'emit', start: 120, end: 121, node: 'node-a' }));
      await peer.record(span(orphan, { start: 130, node: 'node-b' }));
      for (const handle of [fixture.store, peer]) {
        const tree = (await handle.tree(remote.root.traceId))!;
        expect(tree).toMatchObject({ traceId: remote.root.traceId, spans: 4, orphans: 1, dropped: 0, start: 100, end: 200, remoteParentSpanId: remote.root.spanId });
        expect(tree.root.span.spanId).toBe(invoke.spanId);
        expect(tree.root.children.map((node) => [node.span.spanId, node.orphan ?? false])).toEqual([
          [call.spanId, false],
          [orphan.spanId, true],
        ]);
        expect(tree.root.children[0]!.children.map((node) => node.span.node)).toEqual(['node-a']);
      }
    });

    it('keeps at most maxSpansPerTrace spans of a trace, counts the dropped ones, and still updates kept ones', async () => {
      const { store } = await open({ maxSpansPerTrace: 3 });
      const { root, child } = request();
      const kept = [root, child(), child()];
      for (const [i, context] of kept.entries()) await store.record(span(context, { start: 10 + i }));
      for (let i = 0; i < 4; i++) await store.record(span(child(), { start: 20 + i }));
      await store.record(span(kept[1]!, { start: 11, end: 30 }));
      const spans = await store.get(root.traceId);
      expect(spans.map((s) => s.spanId)).toEqual(kept.map((context) => context.spanId));
      expect(spans[1]).toMatchObject({ end: 30, outcome: { status: 'ok' } });
      expect((await store.tree(root.traceId))?.dropped).toBe(4);
      // Other traces are not affected by one trace's bound.
      const other = request();
      await store.record(span(other.root, { start: 1 }));
      expect(await store.get(other.root.traceId)).toHaveLength(1);
    });

    it('forgets traces after ttlMs', async () => {
      const { store } = await open({ ttlMs: 1_500 });
      const { root, child } = request();
      await store.record(span(root, { start: 1 }));
      await store.record(span(child(), { start: 2 }));
      expect(await store.get(root.traceId)).toHaveLength(2);
      await eventually(async () => (await store.get(root.traceId)).length === 0, 30_000, 'an expired trace is forgotten');
      expect(await store.tree(root.traceId)).toBeUndefined();
    });

    it('refuses a malformed trace id or span, naming the field, and stores nothing of it', async () => {
      const { store } = await open();
      for (const traceId of ['', 'abc', '0'.repeat(32), 'A'.repeat(32), `${'a'.repeat(31)}*`, `${'a'.repeat(30)}.>`]) {
        const error = await rejection(store.get(traceId));
        expect(error).toBeInstanceOf(InvalidInputError);
        expect((error as InvalidInputError).field).toBe('traceId');
        expect(((await rejection(store.tree(traceId))) as InvalidInputError).field).toBe('traceId');
      }
      const { root } = request();
      const bad = { ...span(root, { start: 1 }), kind: 'nope' } as unknown as Span;
      const error = await rejection(store.record(bad));
      expect(error.code).toBe('invalid_argument');
      expect((error as InvalidInputError).field).toBe('span.kind');
      expect(await store.get(root.traceId)).toEqual([]);
    });

    it('refuses work once closed', async () => {
      const fixture = await open();
      const { root } = request();
      await fixture.store.close();
      expect((await rejection(fixture.store.record(span(root, { start: 1 })))).code).toBe('storage_error');
      expect((await rejection(fixture.store.get(root.traceId))).code).toBe('storage_error');
      await fixture.store.close();
    });
  });
}
