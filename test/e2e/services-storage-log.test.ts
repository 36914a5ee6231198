/**
 * Handler `storage` (the app store, keyed by the worker's own app) and `log` (structured records in
 * the app's logs, shown by `cocaine-deploy app logs --follow`), through the real engine.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_MAIN, startEngine, waitFor, type RunningEngine } from '../helpers/engine.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';
import { uploadApps } from './services-helpers.js';

async function kv(rpc: Rpc, app: string, op: Record<string, unknown>): Promise<Record<string, unknown>> {
  const result = await rpc.call(`${app}@kv`, JSON.stringify(op), { timeoutMs: 60_000 });
  if (result.error) throw new Error(`${app}@kv: ${result.error.message}`);
  return JSON.parse(result.body.toString()) as Record<string, unknown>;
}

for (const storage of ['fs', 'nats'] as const) {
  describe(`handler services: storage (${storage} storage)`, () => {
    let engine: RunningEngine;
    let rpc: Rpc;
    let nats: NatsServer | undefined;

    beforeAll(async () => {
      const args: string[] = [];
      if (storage === 'nats') {
        nats = await startNatsServer({ jetstream: true });
        args.push('--storage', nats.url);
      }
      engine = await startEngine({ args });
      rpc = connectRpc(engine.address);
      await uploadApps(engine);
    }, 60_000);

    afterAll(async () => {
      rpc?.close();
      await engine?.stop();
      await nats?.stop();
    });

    it('get / put / compare-and-set / delete / list in the app key space', async () => {
      expect(await kv(rpc, 'svc-a', { method: 'get', key: 'counter' })).toEqual({ found: false });
      const { revision } = (await kv(rpc, 'svc-a', { method: 'put', key: 'counter', value: 'one', revision: 0 })) as { revision: number };
      expect(revision).toBeGreaterThan(0);
      expect(await kv(rpc, 'svc-a', { method: 'get', key: 'counter' })).toEqual({ value: 'one', revision });
      const stale = await kv(rpc, 'svc-a', { method: 'put', key: 'counter', value: 'two', revision: revision + 100 });
      expect(stale.error).toMatchObject({ code: 'revision_mismatch' });
      const exists = await kv(rpc, 'svc-a', { method: 'put', key: 'counter', value: 'two', revision: 0 });
      expect(exists.error).toMatchObject({ code: 'revision_mismatch' });
      const next = (await kv(rpc, 'svc-a', { method: 'put', key: 'counter', value: 'two', revision })) as { revision: number };
      expect(next.revision).toBeGreaterThan(revision);
      for (const key of ['list/a', 'list/b', 'list/c']) await kv(rpc, 'svc-a', { method: 'put', key, value: key });
      const first = await kv(rpc, 'svc-a', { method: 'list', prefix: 'list/', limit: 2 });
      expect(first).toEqual({ keys: ['list/a', 'list/b'], next: 'list/b' });
      expect(await kv(rpc, 'svc-a', { method: 'list', prefix: 'list/', limit: 2, after: 'list/b' })).toEqual({ keys: ['list/c'] });
      expect(await kv(rpc, 'svc-a', { method: 'delete', key: 'list/a' })).toEqual({ deleted: true });
      expect(await kv(rpc, 'svc-a', { method: 'delete', key: 'list/a' })).toEqual({ deleted: false });
      const badKey = await kv(rpc, 'svc-a', { method: 'get', key: 'has space' });
      expect(badKey.error).toMatchObject({ code: 'invalid_argument' });
    }, 120_000);

    it('two apps cannot see each other keys through handlers, whatever key they spell', async () => {
      await kv(rpc, 'svc-a', { method: 'put', key: 'secret', value: 'of a' });
      expect(await kv(rpc, 'svc-b', { method: 'get', key: 'secret' })).toEqual({ found: false });
      for (const spelled of ['svc-a/secret', '../svc-a/secret', 'svc-a.secret', 'svc-a\u0000secret'.replace('\u0000', '')]) {
        expect(await kv(rpc, 'svc-b', { method: 'get', key: spelled })).toEqual({ found: false });
      }
      await kv(rpc, 'svc-b', { method: 'put', key: 'secret', value: 'of b' });
      expect(await kv(rpc, 'svc-a', { method: 'get', key: 'secret' })).toMatchObject({ value: 'of a' });
      expect(await kv(rpc, 'svc-b', { method: 'get', key: 'secret' })).toMatchObject({ value: 'of b' });
      expect(((await kv(rpc, 'svc-b', { method: 'list' })) as { keys: string[] }).keys).toEqual(['secret']);
    }, 120_000);
  });
}

describe('handler services: log', () => {
  let engine: RunningEngine;
  let rpc: Rpc;

  beforeAll(async () => {
    engine = await startEngine();
    rpc = connectRpc(engine.address);
    await uploadApps(engine);
  }, 60_000);

  afterAll(async () => {
    rpc?.close();
    await engine?.stop();
  });

  it('LOG records reach the app logs as structured records; app logs --follow shows them', async () => {
    const follower = spawn(process.execPath, [CLI_MAIN, '--engine', engine.address, 'app', 'logs', 'svc-a', '--follow'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    follower.stdout.on('data', (data: Buffer) => (out += data.toString()));
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const result = await rpc.call('svc-a@logit', 'hello structured', { headers: { traceparent }, timeoutMs: 60_000 });
      expect(result.body.toString()).toBe('logged');
      await waitFor('the records in app logs --follow', () => out.includes('second record'), 20_000);
      expect(out).toMatch(/INFO: hello structured answer=42 who=svc-a \(event=logit trace=4bf92f3577b34da6a3ce929d0e0e4736\)/);
      expect(out).toMatch(/WARN: second record \(event=logit trace=4bf92f3577b34da6a3ce929d0e0e4736\)/);
    } finally {
      follower.kill('SIGINT');
    }
    // The JSON view carries the record's fields.
    const json = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, [CLI_MAIN, '--engine', engine.address, '--json', 'app', 'logs', 'svc-a'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (data: Buffer) => (text += data.toString()));
      child.once('close', () => resolve(text));
    });
    const records = json
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { stream: string; workerId: string; record?: Record<string, unknown> })
      .filter((line) => line.stream === 'log');
    expect(records[0]?.record).toMatchObject({ app: 'svc-a', event: 'logit', level: 'info', message: 'hello structured', fields: { answer: 42, who: 'svc-a' }, trace: '4bf92f3577b34da6a3ce929d0e0e4736' });
    expect(records[0]?.record?.worker).toBe(records[0]?.workerId);
  }, 90_000);
});
