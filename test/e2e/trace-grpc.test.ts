/**
 * Traces through a real engine (memory trace store, local queue): the W3C trace context comes in
 * with gRPC metadata or the request's headers, is created when absent, is returned in the
 * response's initial metadata and trailers, reaches the handler as its `traceparent` header; a
 * queued event keeps it, each delivery is a `queued` span, and `cocaine-deploy trace` shows them.
 */
import type { SessionFrameMessage } from '../../engine/api/messages.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RenderedTrace } from '../../engine/trace/render.js';
import { cli, cliJson, startEngine, waitFor, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';
import { allSpans, enqueueRaw, invokeRaw, parsed, returnedTraceparent, traceMetadataOf, TRACE_APP_DIR } from '../trace/wire-helpers.js';

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const CLIENT_PARENT = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`;

describe('trace context through the gRPC engine', () => {
  let engine: RunningEngine;
  let rpc: Rpc;

  beforeAll(async () => {
    engine = await startEngine({ env: { COCAINE_RETRY_BASE_DELAY_MS: '20' } });
    rpc = connectRpc(engine.address);
    await cliJson(engine, ['app', 'upload', TRACE_APP_DIR]);
  });

  afterAll(async () => {
    rpc?.close();
    await engine?.stop();
  });

  it('continues a client traceparent from metadata: same trace id back (initial metadata and trailers), the handler saw the engine span', async () => {
    const reply = await invokeRaw(rpc.client.engine, { target: 'node-trace@headers' }, traceMetadataOf(CLIENT_PARENT, 'vendor=abc'));
    expect(reply.status).toBe(0);
    const initial = returnedTraceparent(reply.initial);
    const trailer = returnedTraceparent(reply.trailers);
    expect(initial.traceId).toBe(CLIENT_TRACE);
    expect(initial.parentId).not.toBe(CLIENT_SPAN);
    expect(trailer).toEqual(initial);
    expect(reply.initial?.get('tracestate')).toEqual(['vendor=abc']);
    const seen = JSON.parse(reply.body.toString()) as Record<string, string>;
    expect(parsed(seen.traceparent)).toEqual(initial);
    expect(seen.tracestate).toBe('vendor=abc');

    const trace = await cliJson<RenderedTrace>(engine, ['trace', CLIENT_TRACE]);
    expect(trace.remoteParentSpanId).toBe(CLIENT_SPAN);
    expect(trace.root).toMatchObject({ kind: 'invoke', target: 'node-trace@headers', spanId: initial.parentId, parentSpanId: CLIENT_SPAN, outcome: 'ok' });
  });

  it("continues a traceparent sent in the request's headers map", async () => {
    const traceId = 'a'.repeat(31) + '1';
    const reply = await invokeRaw(rpc.client.engine, { target: 'node-trace@headers', headers: { traceparent: `00-${traceId}-${'b'.repeat(16)}-01` } });
    expect(reply.status).toBe(0);
    const returned = returnedTraceparent(reply.initial);
    expect(returned.traceId).toBe(traceId);
    expect(parsed((JSON.parse(reply.body.toString()) as Record<string, string>).traceparent)).toEqual(returned);
  });

  it('creates a trace when none (or a malformed one) is sent, and returns it', async () => {
    for (const metadata of [traceMetadataOf(), traceMetadataOf('00-not-a-traceparent-01')]) {
      const reply = await invokeRaw(rpc.client.engine, { target: 'node-trace@headers' }, metadata);
      expect(reply.status).toBe(0);
      const returned = returnedTraceparent(reply.initial);
      expect(returned.traceId).not.toBe(CLIENT_TRACE);
      expect(parsed((JSON.parse(reply.body.toString()) as Record<string, string>).traceparent)).toEqual(returned);
      const trace = await cliJson<RenderedTrace>(engine, ['trace', returned.traceId]);
      expect(trace.remoteParentSpanId).toBeUndefined();
      expect(trace.root).toMatchObject({ kind: 'invoke', spanId: returned.parentId, outcome: 'ok' });
    }
  });

  it('returns the traceparent in the trailers of a failed call and records the error outcome', async () => {
    const reply = await invokeRaw(rpc.client.engine, { target: 'node-trace@fail', data: Buffer.from('x') }, traceMetadataOf(CLIENT_PARENT.replace('00f067', '11f067')));
    expect(reply.status).not.toBe(0);
    const returned = returnedTraceparent(reply.trailers);
    expect(returned.traceId).toBe(CLIENT_TRACE);
    const trace = await cliJson<RenderedTrace>(engine, ['trace', CLIENT_TRACE]);
    const failed = allSpans(trace).find((span) => span.spanId === returned.parentId);
    expect(failed?.outcome).toMatchObject({ code: 'handler_error' });
    expect((failed?.outcome as { message: string }).message).toContain('trace fail: x');
  });

  it('Session: each call continues its headers\' traceparent; its last frame returns the engine span', async () => {
    const stream = rpc.client.engine.Session();
    const frames: SessionFrameMessage[] = [];
    const done = new Promise<void>((resolve) => {
      stream.on('data', (frame: SessionFrameMessage) => {
        frames.push(frame);
        if (frames.filter((f) => f.end || f.error).length === 2) resolve();
      });
    });
    const sessionTrace = 'c'.repeat(32);
    stream.write({ id: 1, invoke: { target: 'node-trace@headers', headers: { traceparent: `00-${sessionTrace}-${'d'.repeat(16)}-01` }, timeoutMs: 30_000 }, end: true });
    stream.write({ id: 2, invoke: { target: 'node-trace@headers', headers: {}, timeoutMs: 30_000 }, end: true });
    await done;
    stream.end();
    const last = (id: number) => frames.find((frame) => Number(frame.id) === id && (frame.end || frame.error))!;
    const first = parsed(last(1).traceparent);
    expect(first.traceId).toBe(sessionTrace);
    const body = Buffer.concat(frames.filter((frame) => Number(frame.id) === 1).map((frame) => frame.data ?? Buffer.alloc(0)));
    expect(parsed((JSON.parse(body.toString()) as Record<string, string>).traceparent)).toEqual(first);
    const second = parsed(last(2).traceparent);
    expect(second.traceId).not.toBe(sessionTrace);
    const trace = await cliJson<RenderedTrace>(engine, ['trace', sessionTrace]);
    expect(trace.root).toMatchObject({ kind: 'session', spanId: first.parentId, outcome: 'ok' });
  });

  it('a queued event keeps its trace: status shows it; the trace shows the enqueue and every attempt with its outcome', async () => {
    const traceId = 'e'.repeat(31) + '2';
    const queued = await enqueueRaw(rpc.client.engine, { target: 'node-trace@flaky', maxAttempts: 3 }, traceMetadataOf(`00-${traceId}-${'f'.repeat(16)}-01`));
    const emit = returnedTraceparent(queued.initial);
    expect(emit.traceId).toBe(traceId);
    expect(returnedTraceparent(queued.trailers)).toEqual(emit);
    const status = await waitFor(
      'the event to complete',
      async () => {
        const current = await rpc.client.status(queued.id);
        return current.state === 'COMPLETED' ? current : undefined;
      },
      60_000,
    );
    expect(status.traceId).toBe(traceId);
    expect(status.attempts).toBe(2);
    const seen = JSON.parse(status.result.toString()) as Record<string, string>;
    expect(parsed(seen.traceparent).traceId).toBe(traceId);

    const shown = await cli(engine, ['status', queued.id]);
    expect(shown.stdout).toMatch(new RegExp(`trace:\\s+${traceId}`));
    expect((await cliJson<{ traceId: string }>(engine, ['status', queued.id])).traceId).toBe(traceId);

    // Both attempts' spans end right after the status changes: poll until recorded as finished.
    const trace = await waitFor('both attempts recorded', async () => {
      const current = await cliJson<RenderedTrace>(engine, ['trace', traceId]);
      const attempts = allSpans(current).filter((span) => span.kind === 'queued' && span.outcome !== 'running');
      return attempts.length === 2 ? current : undefined;
    });
    expect(trace.root).toMatchObject({ kind: 'emit', target: 'node-trace@flaky', spanId: emit.parentId, eventId: queued.id, outcome: 'ok' });
    const attempts = trace.root.children.filter((span) => span.kind === 'queued').sort((a, b) => (a.attempt ?? 0) - (b.attempt ?? 0));
    expect(attempts.map((span) => span.attempt)).toEqual([1, 2]);
    expect(attempts[0]!.outcome).toMatchObject({ code: 'handler_error' });
    expect((attempts[0]!.outcome as { message: string }).message).toContain('flaky: first attempt fails');
    expect(attempts[1]!.outcome).toBe('ok');
    for (const span of attempts) expect(span).toMatchObject({ eventId: queued.id, parentSpanId: emit.parentId });
    // The handler's traceparent named its own attempt's span.
    expect(parsed(seen.traceparent).parentId).toBe(attempts[1]!.spanId);

    const text = await cli(engine, ['trace', `00-${traceId}-${'1'.repeat(16)}-01`]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`trace ${traceId}`);
    expect(text.stdout).toMatch(/emit\s+node-trace@flaky/);
    expect(text.stdout).toMatch(/queued\s+node-trace@flaky.*error handler_error.*attempt 1/);
    expect(text.stdout).toMatch(/queued\s+node-trace@flaky.*ok.*attempt 2/);
  });

  it('EnqueueStream returns each event\'s traceparent in its reply', async () => {
    const stream = rpc.client.engine.EnqueueStream();
    const reply = await new Promise<{ id: string; traceparent: string }>((resolve) => {
      stream.on('data', resolve);
      stream.write({ seq: 1, event: { target: 'node-trace@headers', data: Buffer.alloc(0), headers: { traceparent: CLIENT_PARENT }, maxAttempts: 0, delayMs: 0, id: '' } });
    });
    stream.end();
    expect(parsed(reply.traceparent).traceId).toBe(CLIENT_TRACE);
    const status = await rpc.client.status(reply.id);
    expect(status.traceId).toBe(CLIENT_TRACE);
  });

  it('an unknown trace exits 2 with a clear message; a malformed id exits 1 naming it', async () => {
    const unknown = await cli(engine, ['trace', '0123456789abcdef0123456789abcdef']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/no trace 0123456789abcdef0123456789abcdef: unknown, or expired/);
    const bad = await cli(engine, ['trace', 'nope']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/trace id "nope" is invalid/);
  });
});
