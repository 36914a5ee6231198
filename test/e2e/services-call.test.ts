/**
 * Handler-to-handler `call` through the real engine and Node workers (protocol version 2):
 * pool rule for callers waiting on calls, depth limit, deadlines, crashes and cancellation.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, tempDir, waitFor, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';
import { connect } from '../../engine/api/client.js';
import { uploadApps, uploadProfile } from './services-helpers.js';

describe('handler services: call', () => {
  let engine: RunningEngine;
  let rpc: Rpc;

  beforeAll(async () => {
    engine = await startEngine({ env: { COCAINE_MAX_CALL_DEPTH: '6' } });
    rpc = connectRpc(engine.address);
    await uploadProfile(engine, 'one', 'pool-limit: 1\nconcurrency: 1\nqueue-limit: 100\nidle-timeout: 30\n');
    await uploadApps(engine, { a: 'one', b: 'one' });
  }, 60_000);

  afterAll(async () => {
    rpc?.close();
    await engine?.stop();
  });

  it('A calls A 3 deep with pool-limit 1 and concurrency 1: the waiting callers hold no slot, so it completes', async () => {
    const result = await rpc.call('svc-a@chain', '3', { timeoutMs: 60_000 });
    expect(result.error).toBeUndefined();
    const levels = result.body.toString().split('>');
    expect(levels.map((level) => level.split('@')[0])).toEqual(['3', '2', '1', '0']);
    // Each level ran in its own worker: the one waiting could not serve its callee.
    expect(new Set(levels.map((level) => level.split('@')[1])).size).toBe(4);
  }, 90_000);

  it('a cycle A → B → A ... ends with call_depth_exceeded (max-call-depth 6), never hangs', async () => {
    const result = await rpc.call('svc-a@cycle', '', { timeoutMs: 90_000 });
    expect(result.error?.code).toBe('handler_error');
    expect(result.error?.message).toContain('call_depth_exceeded');
    expect(result.error?.message).toContain('past max-call-depth 6');
  }, 120_000);

  it('the callee gets cocaine-call-depth = the caller depth + 1 and the caller traceparent', async () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const result = await rpc.call('svc-a@relay', JSON.stringify({ target: 'svc-a@headers' }), { headers: { traceparent }, timeoutMs: 60_000 });
    const { text } = JSON.parse(result.body.toString()) as { text: string };
    const headers = JSON.parse(text) as Record<string, string>;
    expect(headers['cocaine-call-depth']).toBe('1');
    // The same trace, continued by the engine's call span (a span id of its own).
    const [, traceId, spanId] = headers.traceparent!.split('-');
    expect(traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(spanId).not.toBe('b7ad6b7169203331');
  }, 90_000);

  it("the trace tree of a request holds the handler's call and emit, each under the span of its caller", async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const file = join(tempDir('trace-emit'), 'events');
    const result = await rpc.call('svc-a@relay', JSON.stringify({ target: 'svc-b@ping' }), { headers: { traceparent }, timeoutMs: 60_000 });
    expect(result.error).toBeUndefined();
    const emitted = await rpc.call('svc-a@fan', JSON.stringify({ n: 1, file }), { headers: { traceparent }, timeoutMs: 60_000 });
    expect(emitted.error).toBeUndefined();
    const client = connect(engine.address);
    try {
      const spans = await waitFor('the call, emit and queued spans', async () => {
        const reply = await client.trace('4bf92f3577b34da6a3ce929d0e0e4736').catch(() => undefined);
        const kinds = reply?.spans.map((span) => `${span.kind} ${span.target}`) ?? [];
        return kinds.includes('call svc-b@ping') && kinds.includes('emit svc-b@record') && kinds.includes('queued svc-b@record') ? reply!.spans : undefined;
      }, 30_000, 200);
      const byId = new Map(spans.map((span) => [span.spanId, span]));
      const parentOf = (kind: string, target: string) => {
        const span = spans.find((candidate) => candidate.kind === kind && candidate.target === target)!;
        const parent = byId.get(span.parentSpanId);
        return parent ? `${parent.kind} ${parent.target}` : undefined;
      };
      expect(parentOf('call', 'svc-b@ping')).toBe('invoke svc-a@relay');
      expect(parentOf('emit', 'svc-b@record')).toBe('invoke svc-a@fan');
      expect(parentOf('queued', 'svc-b@record')).toBe('emit svc-b@record');
      expect(spans.find((span) => span.kind === 'call')?.outcome).toBe('ok');
    } finally {
      client.close();
    }
  }, 90_000);

  it('streams the request body and the answer both ways', async () => {
    const result = await rpc.call('svc-a@stream', '20', { timeoutMs: 60_000 });
    expect(result.error).toBeUndefined();
    expect(result.body.toString()).toBe(Array.from({ length: 20 }, (_, i) => `PART ${i};`).join(''));
  }, 90_000);

  it('errors reach the handler as ServiceError with the engine code', async () => {
    const unknownApp = JSON.parse((await rpc.call('svc-a@relay', JSON.stringify({ target: 'nope@x' }), { timeoutMs: 60_000 })).body.toString());
    expect(unknownApp.error).toMatchObject({ code: 'app_not_found', name: 'ServiceError' });
    const badTarget = JSON.parse((await rpc.call('svc-a@relay', JSON.stringify({ target: 'no-at-sign' }), { timeoutMs: 60_000 })).body.toString());
    expect(badTarget.error.code).toBe('invalid_argument');
  }, 90_000);

  it('a callee crash fails only that call, with the reason', async () => {
    const result = await rpc.call('svc-a@relay', JSON.stringify({ target: 'svc-a@crash' }), { timeoutMs: 60_000 });
    expect(result.error).toBeUndefined();
    const { error } = JSON.parse(result.body.toString());
    expect(error.code).toBe('worker_crashed');
    expect(error.message).toContain('exited with code 3');
  }, 90_000);

  it('deadline propagation: caller timeout 1 s, callee sleeps 5 s → DEADLINE_EXCEEDED in bounds, callee cancelled', async () => {
    const file = join(tempDir('svc-deadline'), 'callee');
    const started = Date.now();
    // Warm: svc-a has idle workers (idle-timeout 30 s), so the callee starts at once, well within 1 s.
    expect((await rpc.call('svc-a@chain', '2', { timeoutMs: 60_000 })).error).toBeUndefined();
    const t0 = Date.now();
    const timed = await rpc.call('svc-a@relay', JSON.stringify({ target: 'svc-a@sleepy', body: file }), { timeoutMs: 1_000 });
    const took = Date.now() - t0;
    expect(timed.error?.status).toBe(4); // DEADLINE_EXCEEDED
    expect(took).toBeLessThan(4_000);
    const seen = await waitFor('the callee to be cancelled', () => existsSync(file) && readFileSync(file, 'utf8').includes('aborted') && readFileSync(file, 'utf8'), 15_000);
    expect(seen.trim()).toMatch(/^started\naborted (deadline|cancelled)$/);
    expect(Date.now() - started).toBeLessThan(60_000);
  }, 90_000);

  it('cancelling the caller (the client goes away) cancels the callee: it sees its signal', async () => {
    const file = join(tempDir('svc-cancel'), 'callee');
    const controller = new AbortController();
    const stream = rpc.client.invoke('svc-a@relay', Buffer.from(JSON.stringify({ target: 'svc-a@sleepy', body: file })), { timeoutMs: 60_000, signal: controller.signal });
    const consumed = (async () => {
      try {
        for await (const _ of stream) void _;
      } catch {
        // cancelled
      }
    })();
    // The callee runs once a second worker is up (the caller waits on it).
    await waitFor('the callee to start', () => existsSync(file), 30_000);
    controller.abort();
    await consumed;
    const seen = await waitFor('the callee to see its signal', () => readFileSync(file, 'utf8').includes('aborted') && readFileSync(file, 'utf8'), 15_000);
    expect(seen.trim()).toBe('started\naborted cancelled');
  }, 90_000);
});
