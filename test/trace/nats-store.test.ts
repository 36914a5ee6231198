import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { InvalidInputError } from '../../engine/errors/index.js';
import { NatsTraceStore, resolveNatsTraceStoreOptions } from '../../engine/trace/nats-store.js';
import type { TraceStore } from '../../engine/trace/types.js';
import { startNatsCluster, startNatsServer, stopAllNatsServers, type NatsServer } from '../helpers/nats-server.js';
import { request, span, worstSpan } from './spans.js';
import { describeTraceStoreContract } from './store.contract.js';

let server: NatsServer;

beforeAll(async () => {
  server = await startNatsServer();
});

afterAll(stopAllNatsServers);

/** Buckets of each test never meet another's. */
const prefix = () => `t${randomBytes(5).toString('hex')}`;

describeTraceStoreContract('nats', async (options) => {
  const shared = prefix();
  const handles: TraceStore[] = [await NatsTraceStore.open({ servers: server.url, prefix: shared, ...options })];
  return {
    store: handles[0]!,
    async peer() {
      handles.push(await NatsTraceStore.open({ servers: [server.url], prefix: shared, ...options }));
      return handles.at(-1)!;
    },
    async cleanup() {
      await Promise.all(handles.map((handle) => handle.close()));
    },
  };
});

describe('NatsTraceStore specifics', () => {
  it('keeps one key per span, <traceId>.<spanId>, in <prefix>-traces with max age, size bound and discard-old', async () => {
    const shared = prefix();
    const store = await NatsTraceStore.open({ servers: server.url, prefix: shared, ttlMs: 60_000, maxBytes: 1_000_000 });
    const nc = await connect({ servers: server.url });
    try {
      const { root, child } = request();
      const second = child();
      await store.record(span(root, { start: 1 }));
      await store.record(span(second, { start: 2 }));
      await store.record(span(second, { start: 2, end: 3 }));
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(`KV_${shared}-traces`, { subjects_filter: '>' });
      expect(Object.keys(info.state.subjects ?? {}).sort()).toEqual([`$KV.${shared}-traces.${root.traceId}.${root.spanId}`, `$KV.${shared}-traces.${root.traceId}.${second.spanId}`].sort());
      expect(info.state.messages).toBe(2);
      expect(info.config).toMatchObject({ max_age: 60_000 * 1_000_000, max_bytes: 1_000_000, discard: DiscardPolicy.Old, max_msgs_per_subject: 1 });
    } finally {
      await nc.close();
      await store.close();
    }
  });

  it('records a span with every text field at its bound', async () => {
    const store = await NatsTraceStore.open({ servers: server.url, prefix: prefix() });
    try {
      const worst = worstSpan();
      await store.record(worst);
      expect(await store.get(worst.traceId)).toEqual([worst]);
    } finally {
      await store.close();
    }
  });

  it('when the bucket is full, drops the oldest spans and keeps recording new ones', async () => {
    const shared = prefix();
    const store = await NatsTraceStore.open({ servers: server.url, prefix: shared, maxBytes: 20_000 });
    try {
      const traces = Array.from({ length: 200 }, () => request());
      for (const [i, trace] of traces.entries()) await store.record(span(trace.root, { start: i, end: i + 1, target: `app${i}@event` }));
      expect(await store.get(traces[0]!.root.traceId)).toEqual([]);
      expect((await store.get(traces[199]!.root.traceId)).map((s) => s.target)).toEqual(['app199@event']);
    } finally {
      await store.close();
    }
  });

  it('takes its own bounds over a bucket another node made with others', async () => {
    const shared = prefix();
    const first = await NatsTraceStore.open({ servers: server.url, prefix: shared, ttlMs: 60_000 });
    const second = await NatsTraceStore.open({ servers: server.url, prefix: shared, ttlMs: 1_500 });
    try {
      const { root } = request();
      await first.record(span(root, { start: 1 }));
      expect(await second.get(root.traceId)).toHaveLength(1);
      const started = Date.now();
      while ((await first.get(root.traceId)).length > 0) {
        if (Date.now() - started > 30_000) throw new Error('the shorter TTL of the second node was not applied');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it('validates its options, naming the field', () => {
    for (const [options, field] of [
      [{ servers: server.url, prefix: 'a.b' }, 'trace.prefix'],
      [{ servers: server.url, replicas: 6 }, 'trace.replicas'],
      [{ servers: server.url, ttlMs: 0 }, 'trace.ttlMs'],
      [{ servers: server.url, maxBytes: 1.5 }, 'trace.maxBytes'],
      [{ servers: server.url, maxSpansPerTrace: 0 }, 'trace.maxSpansPerTrace'],
    ] as const) {
      let caught: unknown;
      try {
        resolveNatsTraceStoreOptions(options);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(InvalidInputError);
      expect((caught as InvalidInputError).field).toBe(field);
    }
  });
});

describe('NatsTraceStore on a 3-server cluster', () => {
  it('spans recorded through different servers (nodes) form one trace, read through a third', async () => {
    const cluster = await startNatsCluster(3);
    const shared = prefix();
    const stores: NatsTraceStore[] = [];
    try {
      for (const url of cluster.urls) stores.push(await NatsTraceStore.open({ servers: url, prefix: shared, replicas: 3 }));
      const [nodeA, nodeB, reader] = stores as [NatsTraceStore, NatsTraceStore, NatsTraceStore];
      const { root, child } = request();
      const call = child();
      const queued = child(call);
      await nodeA.record(span(root, { kind: 'invoke', target: 'shop@buy', node: 'node-a', start: 100, end: 300 }));
      await nodeB.record(span(call, { target: 'stock@reserve', node: 'node-b', start: 120, end: 200 }));
      await nodeA.record(span(queued, { kind: 'queued', target: 'mail@send', node: 'node-a', start: 210 }));
      const tree = (await reader.tree(root.traceId))!;
      expect(tree).toMatchObject({ spans: 3, orphans: 0, start: 100, end: 300 });
      expect(tree.root.children.map((node) => node.span.node)).toEqual(['node-b']);
      expect(tree.root.children[0]!.children.map((node) => node.span.target)).toEqual(['mail@send']);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
      await cluster.stop();
    }
  });
});
