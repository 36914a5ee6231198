/**
 * With NATS the trace store is the KV bucket every node shares: a trace recorded on one engine
 * node is read from another; NATS request-reply continues and returns the trace context.
 */
import { connect, headers } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RenderedTrace } from '../../engine/trace/render.js';
import { cli, cliJson, startEngine, stopAllEngines, waitFor, type RunningEngine } from '../helpers/engine.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';
import { allSpans, invokeRaw, parsed, returnedTraceparent, traceMetadataOf, TRACE_APP_DIR } from '../trace/wire-helpers.js';

describe('traces shared by two engine nodes over NATS', () => {
  let nats: NatsServer;
  let nodeA: RunningEngine;
  let nodeB: RunningEngine;
  let rpcA: Rpc;

  beforeAll(async () => {
    nats = await startNatsServer();
    const args = (id: string) => ['--storage', nats.url, '--queue', 'jetstream', '--nats', nats.url, '--node-id', id];
    const env = { COCAINE_RETRY_BASE_DELAY_MS: '20' };
    nodeA = await startEngine({ args: args('trace-node-a'), env });
    nodeB = await startEngine({ args: args('trace-node-b'), env });
    rpcA = connectRpc(nodeA.address);
    await cliJson(nodeA, ['app', 'upload', TRACE_APP_DIR]);
  }, 120_000);

  afterAll(async () => {
    rpcA?.close();
    await stopAllEngines();
    await nats?.stop();
  });

  it('a trace recorded on node A is read from node B (cocaine-deploy trace)', async () => {
    const traceId = '5'.repeat(31) + 'a';
    const reply = await invokeRaw(rpcA.client.engine, { target: 'node-trace@headers' }, traceMetadataOf(`00-${traceId}-${'6'.repeat(16)}-01`));
    expect(reply.status).toBe(0);
    const returned = returnedTraceparent(reply.initial);
    expect(returned.traceId).toBe(traceId);
    // The end of the span is recorded after the reply: poll until it is.
    const trace = await waitFor(
      'the finished span on node B',
      async () => {
        const result = await cli(nodeB, ['--json', 'trace', traceId]);
        if (result.code !== 0) return undefined;
        const current = JSON.parse(result.stdout) as RenderedTrace;
        return current.root.outcome === 'ok' ? current : undefined;
      },
      20_000,
      200,
    );
    expect(trace.root).toMatchObject({ kind: 'invoke', node: 'trace-node-a', spanId: returned.parentId, parentSpanId: '6'.repeat(16), target: 'node-trace@headers' });
    const text = await cli(nodeB, ['trace', traceId]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/invoke\s+node-trace@headers.*ok\s+\(node trace-node-a\)/);
  });

  it('NATS request-reply continues the traceparent header and returns the engine span in the reply headers', async () => {
    const traceId = '7'.repeat(31) + 'b';
    const nc = await connect({ servers: nats.url });
    try {
      const h = headers();
      h.set('Cocaine-Event', 'headers');
      h.set('traceparent', `00-${traceId}-${'8'.repeat(16)}-01`);
      const replies = await nc.requestMany('cocaine.invoke.node-trace', '', { headers: h, strategy: 'sentinel', maxWait: 30_000 } as never);
      const chunks: string[] = [];
      let status = '';
      let returned = '';
      for await (const msg of replies) {
        if (msg.data.length > 0) chunks.push(msg.string());
        else {
          status = msg.headers?.get('Cocaine-Status') ?? '';
          returned = msg.headers?.get('traceparent') ?? '';
        }
      }
      expect(status).toBe('ok');
      const engineSpan = parsed(returned);
      expect(engineSpan.traceId).toBe(traceId);
      expect(parsed((JSON.parse(chunks.join('')) as Record<string, string>).traceparent)).toEqual(engineSpan);
      for (const node of [nodeA, nodeB]) {
        const trace = await waitFor(
          'the NATS invoke span on both nodes',
          async () => {
            const result = await cli(node, ['--json', 'trace', traceId]);
            return result.code === 0 ? (JSON.parse(result.stdout) as RenderedTrace) : undefined;
          },
          20_000,
          200,
        );
        expect(allSpans(trace).map((span) => span.spanId)).toContain(engineSpan.parentId);
        expect(trace.root).toMatchObject({ kind: 'invoke', parentSpanId: '8'.repeat(16) });
        expect(['trace-node-a', 'trace-node-b']).toContain(trace.root.node);
      }
    } finally {
      await nc.close();
    }
  });

  it('JetStream queue: the status read on node B shows the trace id; the trace shows the enqueue and both attempts', async () => {
    const traceId = '9'.repeat(31) + 'c';
    const { id } = await rpcA.client.enqueue('node-trace@flaky', '', { maxAttempts: 3, headers: { traceparent: `00-${traceId}-${'a'.repeat(16)}-01` } });
    const rpcB = connectRpc(nodeB.address);
    try {
      const pending = await rpcB.client.status(id);
      expect(pending.traceId).toBe(traceId);
      const status = await waitFor(
        'the event to complete',
        async () => {
          const current = await rpcB.client.status(id);
          return current.state === 'COMPLETED' ? current : undefined;
        },
        60_000,
        100,
      );
      expect(status.attempts).toBe(2);
      expect(status.traceId).toBe(traceId);
    } finally {
      rpcB.close();
    }
    const trace = await waitFor(
      'both attempts recorded',
      async () => {
        const result = await cli(nodeB, ['--json', 'trace', traceId]);
        if (result.code !== 0) return undefined;
        const current = JSON.parse(result.stdout) as RenderedTrace;
        return allSpans(current).filter((span) => span.kind === 'queued' && span.outcome !== 'running').length === 2 ? current : undefined;
      },
      20_000,
      200,
    );
    expect(trace.root).toMatchObject({ kind: 'emit', eventId: id, node: 'trace-node-a', outcome: 'ok' });
    const attempts = trace.root.children.filter((span) => span.kind === 'queued').sort((a, b) => (a.attempt ?? 0) - (b.attempt ?? 0));
    expect(attempts.map((span) => [span.attempt, span.outcome === 'ok' ? 'ok' : (span.outcome as { code: string }).code])).toEqual([
      [1, 'handler_error'],
      [2, 'ok'],
    ]);
  });

  it('JetStream queue: a client-chosen id shows its trace id while still PENDING', async () => {
    const traceId = 'b'.repeat(31) + 'd';
    const id = `trace-client-id-${Date.now()}`;
    await rpcA.client.enqueue('node-trace@headers', '', { id, delayMs: 600_000, headers: { traceparent: `00-${traceId}-${'c'.repeat(16)}-01` } });
    const status = await rpcA.client.status(id);
    expect(status.state).toBe('PENDING');
    expect(status.traceId).toBe(traceId);
  });

  it('an unknown trace id exits 2 on a NATS node too', async () => {
    const unknown = await cli(nodeB, ['trace', 'fedcba9876543210fedcba9876543210']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no trace fedcba9876543210fedcba9876543210: unknown, or expired/);
  });
});

describe('--nats on a server without JetStream (request-reply only)', () => {
  let nats: NatsServer;
  let engine: RunningEngine;

  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: false });
    engine = await startEngine({ args: ['--nats', nats.url] });
    await cliJson(engine, ['app', 'upload', TRACE_APP_DIR]);
  }, 120_000);

  afterAll(async () => {
    await engine?.stop();
    await nats?.stop();
  });

  it('starts at once, keeps its traces in memory and says so', async () => {
    const output = [...engine.stdout, ...engine.stderr].join('');
    expect(output).toMatch(/traces are kept in this node's memory \(not shared with other nodes\): NATS JetStream is not available/);
    const rpc = connectRpc(engine.address);
    try {
      const reply = await invokeRaw(rpc.client.engine, { target: 'node-trace@headers' });
      expect(reply.status).toBe(0);
      const returned = returnedTraceparent(reply.initial);
      const trace = await cliJson<RenderedTrace>(engine, ['trace', returned.traceId]);
      expect(trace.root).toMatchObject({ kind: 'invoke', spanId: returned.parentId, outcome: 'ok' });
    } finally {
      rpc.close();
    }
  });
});
