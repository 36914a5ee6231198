/**
 * Handler `emit` into the durable queue, on the local queue and on JetStream (real nats-server):
 * a retried handler's emits keep their ids (no double events), and a pipeline of 10,000 emitted
 * events completes with none lost.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, tempDir, waitFor, type RunningEngine } from '../helpers/engine.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';
import { uploadApps } from './services-helpers.js';

const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

for (const backend of ['local', 'jetstream'] as const) {
  describe(`handler services: emit (${backend} queue)`, () => {
    let engine: RunningEngine;
    let rpc: Rpc;
    let nats: NatsServer | undefined;

    beforeAll(async () => {
      const args: string[] = [];
      if (backend === 'jetstream') {
        nats = await startNatsServer({ jetstream: true });
        args.push('--queue', 'jetstream', '--nats', nats.url);
      }
      engine = await startEngine({ args, env: { COCAINE_RETRY_BASE_DELAY_MS: '20' } });
      rpc = connectRpc(engine.address);
      await uploadApps(engine);
    }, 60_000);

    afterAll(async () => {
      rpc?.close();
      await engine?.stop();
      await nats?.stop();
    });

    it('a queued handler that emits 3 events, fails, and succeeds on its retry: exactly 3 events ran', async () => {
      const file = join(tempDir('svc-emit3'), 'record');
      const { id } = await rpc.enqueue('svc-a@emit3', file, { maxAttempts: 3 });
      const status = await waitFor('the emitter to complete', async () => {
        const current = await rpc.status(id);
        return current.state === 'COMPLETED' ? current : undefined;
      }, 60_000, 100);
      expect(status.attempts).toBe(2);
      const attempts = lines(`${file}.emits`).map((line) => JSON.parse(line) as { attempt: string; results: Array<{ id: string; duplicate: boolean }> });
      expect(attempts.map((attempt) => attempt.attempt)).toEqual(['1', '2']);
      expect(attempts[0].results).toEqual([1, 2, 3].map((k) => ({ id: `${id}.${k}`, duplicate: false })));
      expect(attempts[1].results).toEqual([1, 2, 3].map((k) => ({ id: `${id}.${k}`, duplicate: true })));
      for (const k of [1, 2, 3]) {
        await waitFor(`emitted event ${k}`, async () => (await rpc.status(`${id}.${k}`)).state === 'COMPLETED', 30_000, 100);
      }
      // Every emitted event completed once: nothing more is coming.
      expect(lines(file).sort()).toEqual(['1', '2', '3']);
    }, 120_000);

    it('a pipeline of 10,000 emitted events completes with none lost', async () => {
      const file = join(tempDir('svc-fan'), 'record');
      const started = Date.now();
      const result = await rpc.call('svc-a@fan', JSON.stringify({ n: 10_000, file }), { timeoutMs: 300_000 });
      expect(result.error).toBeUndefined();
      expect(result.body.toString()).toBe('10000');
      const emittedMs = Date.now() - started;
      await waitFor('10,000 events to run', () => lines(file).length >= 10_000, 300_000, 250);
      const ranMs = Date.now() - started;
      const seen = new Set(lines(file));
      expect(seen.size).toBe(10_000);
      console.log(`[services-emit ${backend}] 10,000 emits queued in ${emittedMs} ms (${Math.round(10_000_000 / emittedMs)}/s); all ran after ${ranMs} ms`);
    }, 400_000);
  });
}
