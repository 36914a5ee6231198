/**
 * Scale-out as a user runs it: three engine nodes on a three-server NATS cluster (nats storage,
 * jetstream queue, R3). 10,000 events while one engine node is SIGKILLed and one NATS server is
 * stopped: every accepted event completes at least once (duplicates counted and reported).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, headers } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, cliJson, startEngine, stopAllEngines, tempDir, waitFor, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';
import { startNatsCluster } from '../helpers/nats-server.js';

const EVENTS = 10_000;

describe('three engine nodes on a NATS cluster', () => {
  let cluster: Awaited<ReturnType<typeof startNatsCluster>>;
  const engines: RunningEngine[] = [];
  let rpc: Rpc;
  const work = tempDir('cluster');
  const recordFile = join(work, 'record.log');

  const engineArgs = () => ['--storage', cluster.urls.join(','), '--queue', 'jetstream', '--nats', cluster.urls.join(','), '--nats-replicas', '3'];

  beforeAll(async () => {
    cluster = await startNatsCluster(3);
    for (let i = 0; i < 3; i++) engines.push(await startEngine({ args: engineArgs(), env: { COCAINE_RETRY_BASE_DELAY_MS: '50', COCAINE_ACK_WAIT_MS: '5000' } }));
    rpc = connectRpc(engines[0].address);
    const appDir = join(work, 'app');
    mkdirSync(appDir);
    for (const file of ['index.js', 'package.json']) writeFileSync(join(appDir, file), readFileSync(join(ROOT, 'test/fixtures/node-record', file)));
    writeFileSync(join(appDir, 'manifest.yaml'), `name: recorder\nplugin: node\nentrypoint: index.js\nenvironment:\n  RECORD_FILE: ${recordFile}\n`);
    const profile = join(work, 'p.json');
    writeFileSync(profile, JSON.stringify({ 'pool-limit': 2, concurrency: 64, 'queue-limit': 1000 }));
    await cliJson(engines[0], ['profile', 'upload', 'p', profile]);
    await cliJson(engines[0], ['app', 'upload', appDir, '--profile', 'p']);
  }, 180_000);

  afterAll(async () => {
    rpc?.close();
    await stopAllEngines();
    await cluster?.stop();
  });

  it('every node sees an upload at once: any node serves the app without a re-upload', async () => {
    for (const engine of engines) {
      const node = connectRpc(engine.address);
      await waitFor('the app on every node', async () => (await node.call('recorder@ping')).body.toString() === 'pong', 10_000, 100);
      node.close();
    }
  });

  it('serves blocking calls over NATS request-reply with chunked replies', async () => {
    const nc = await connect({ servers: cluster.urls });
    try {
      const h = headers();
      h.set('Cocaine-Event', 'ping');
      const replies = await nc.requestMany('cocaine.invoke.recorder', '', { headers: h, strategy: 'sentinel', maxWait: 10_000 } as never);
      const chunks: string[] = [];
      let status = '';
      for await (const msg of replies) {
        if (msg.data.length > 0) chunks.push(msg.string());
        else status = msg.headers?.get('Cocaine-Status') ?? '';
      }
      expect(chunks.join('')).toBe('pong');
      expect(status).toBe('ok');
      const missing = headers();
      missing.set('Cocaine-Event', 'ping');
      const failed = await nc.requestMany('cocaine.invoke.ghost', '', { headers: missing, strategy: 'sentinel', maxWait: 10_000 } as never);
      for await (const msg of failed) {
        expect(msg.headers?.get('Cocaine-Status')).toBe('error');
        expect(msg.headers?.get('Cocaine-Error-Status')).toBe('5');
      }
    } finally {
      await nc.close();
    }
  });

  it('shows every node in cluster info', async () => {
    const info = await cliJson<{ cluster: Array<{ nodeId: string }> }>(engines[0], ['info', '--cluster']);
    expect(info.cluster.length).toBe(3);
  });

  it(`completes all ${EVENTS.toLocaleString('en-US')} accepted events while an engine node is SIGKILLed and a NATS server stops`, async () => {
    const ids: string[] = [];
    let next = 0;
    let killed = false;
    const enqueue = async () => {
      while (next < EVENTS) {
        next++;
        ids.push((await rpc.enqueue('recorder@record', 'x')).id);
        if (!killed && ids.length === EVENTS / 4) {
          killed = true;
          await engines[2].kill();
          await cluster.servers[2].stop();
        }
      }
    };
    await Promise.all(Array.from({ length: 64 }, enqueue));
    expect(ids.length).toBe(EVENTS);
    const seen = () => (existsSync(recordFile) ? readFileSync(recordFile, 'utf8').split('\n').filter(Boolean) : []);
    await waitFor('every accepted event to be handled', () => new Set(seen()).size >= EVENTS, 180_000, 500);
    const handled = seen();
    const unique = new Set(handled);
    for (const id of ids) expect(unique.has(id)).toBe(true);
    const duplicates = handled.length - unique.size;
    console.log(`cluster run: ${EVENTS} events accepted, ${unique.size} handled, ${duplicates} duplicate deliveries (at-least-once)`);
    const sample = ids.filter((_, i) => i % 500 === 0);
    await waitFor('their status to be COMPLETED from any node', async () => {
      const states = await Promise.all(sample.map((id) => rpc.status(id).then((status) => status.state)));
      return states.every((state) => state === 'COMPLETED');
    }, 30_000, 250);
    await cluster.servers[2].start();
  }, 300_000);

  it('notices a node that left', async () => {
    await waitFor(
      'the killed node to leave the cluster view',
      async () => (await cliJson<{ cluster: unknown[] }>(engines[0], ['info', '--cluster'])).cluster.length === 2,
      20_000,
      500,
    );
  });

  it('puts a poisoned event in the dead-letter stream after max attempts; redrive re-runs it', async () => {
    const { id } = await rpc.enqueue('recorder@poison', '', { maxAttempts: 2 });
    const failed = await waitFor('the poisoned event to fail', async () => {
      const status = await rpc.status(id);
      return status.state === 'FAILED' ? status : undefined;
    }, 30_000, 200);
    expect(failed.attempts).toBe(2);
    expect(failed.lastError).toContain('poisoned event');
    const dead = await cliJson<Array<{ id: string }>>(engines[1], ['dead-letters', 'recorder']);
    expect(dead.map((event) => event.id)).toContain(id);
    await cliJson(engines[1], ['redrive', id]);
    await waitFor('the redriven event to run its attempts again and fail', async () => {
      const status = await rpc.status(id);
      return status.state === 'FAILED' && status.attempts === 2 && (await cliJson<Array<{ id: string }>>(engines[0], ['dead-letters', 'recorder'])).some((event) => event.id === id);
    }, 30_000, 200);
  }, 60_000);
});
