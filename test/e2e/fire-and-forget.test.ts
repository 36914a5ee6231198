import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, cliJson, startEngine, tempDir, waitFor, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';

describe('fire-and-forget events (durable local queue)', () => {
  let engine: RunningEngine;
  let rpc: Rpc;
  const dataDir = tempDir('ff-data');

  beforeAll(async () => {
    engine = await startEngine({ dataDir, env: { COCAINE_RETRY_BASE_DELAY_MS: '20' } });
    rpc = connectRpc(engine.address);
    const profile = join(tempDir('ff-profile'), 'one.yaml');
    writeFileSync(profile, 'pool-limit: 1\nconcurrency: 1\nqueue-limit: 10\n');
    await cliJson(engine, ['profile', 'upload', 'one', profile]);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-echo')]);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-slow'), '--profile', 'one']);
  });

  afterAll(async () => {
    rpc?.close();
    await engine?.stop();
  });

  it('accepts an event, runs it, and reports COMPLETED with the result', async () => {
    const { id } = await rpc.enqueue('node-echo@echo', 'queued hello');
    expect(id).toMatch(/\S{8,}/);
    const status = await waitFor('completion', async () => {
      const current = await rpc.status(id);
      return current.state === 'COMPLETED' ? current : undefined;
    });
    expect(status.result?.toString()).toBe('queued hello');
    expect(status.attempts).toBe(1);
  });

  it('retries a failing event with backoff up to max attempts, then FAILED with the last error', async () => {
    const { id } = await rpc.enqueue('node-slow@fail', 'again', { maxAttempts: 3 });
    const status = await waitFor('failure', async () => {
      const current = await rpc.status(id);
      return current.state === 'FAILED' ? current : undefined;
    });
    expect(status.attempts).toBe(3);
    expect(status.lastError).toContain('boom: again');
    const dead = await cliJson<Array<{ id: string }>>(engine, ['dead-letters', 'node-slow']);
    expect(dead.map((event) => event.id)).toContain(id);
  });

  it('fails an unknown event at once without retrying; refuses an unknown app', async () => {
    const { id } = await rpc.enqueue('node-echo@nope', '', { maxAttempts: 5 });
    const status = await waitFor('failure', async () => {
      const current = await rpc.status(id);
      return current.state === 'FAILED' ? current : undefined;
    });
    expect(status.attempts).toBe(1);
    await expect(rpc.enqueue('no-such-app@echo', '')).rejects.toMatchObject({ status: 5 });
    await expect(rpc.status('no-such-id')).rejects.toMatchObject({ status: 5 });
  });

  it('queues 2,000 events over one EnqueueStream; each completes with its own result', async () => {
    const stream = rpc.client.enqueueStream();
    const replies = await Promise.all(Array.from({ length: 2_000 }, (_, i) => stream.enqueue('node-echo@echo', `streamed ${i}`)));
    await stream.close();
    expect(new Set(replies.map((reply) => reply.id)).size).toBe(2_000);
    for (const i of [0, 999, 1_999]) {
      const status = await waitFor(`event ${i}`, async () => {
        const current = await rpc.status(replies[i]!.id);
        return current.state === 'COMPLETED' ? current : undefined;
      });
      expect(status.result?.toString()).toBe(`streamed ${i}`);
    }
    await waitFor('every event', async () => {
      const states = await Promise.all(replies.map((reply) => rpc.status(reply.id)));
      return states.every((state) => state.state === 'COMPLETED') || undefined;
    });
  });

  it('loses no accepted event when the engine is SIGKILLed, and finishes them after a restart', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) ids.push((await rpc.enqueue('node-slow@sleep', '30')).id);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await engine.kill();
    rpc.close();
    engine = await startEngine({ dataDir, env: { COCAINE_RETRY_BASE_DELAY_MS: '20' } });
    rpc = connectRpc(engine.address);
    await waitFor(
      'every accepted event to complete',
      async () => {
        const states = await Promise.all(ids.map((id) => rpc.status(id).then((status) => status.state)));
        return states.every((state) => state === 'COMPLETED');
      },
      30_000,
      200,
    );
  });
});
