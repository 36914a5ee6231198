import { join } from 'node:path';
import { Queue as BullQueue, Worker as BullWorker } from 'bullmq';
import type { EngineClient } from '../../engine/api/client.js';
import type { SectionContext } from '../run.js';
import type { BenchRow } from '../report.js';
import { startNatsServer } from '../../test/helpers/nats-server.js';
import { startRedisServer } from '../../test/helpers/redis-server.js';
import { EXAMPLES, benchEngine, deploy, type BenchEngine } from './engine-process.js';

const EVENTS = 10_000;
const IN_FLIGHT = 256;

async function enqueueAll(client: EngineClient, target: string, count: number): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) {
      next++;
      await client.enqueue(target, 'x');
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
}

async function completed(engines: BenchEngine[], app: string): Promise<number> {
  let total = 0;
  for (const engine of engines) {
    const info = await engine.client.info();
    total += info.node?.apps.find((entry) => entry.name === app)?.counters?.completed ?? 0;
  }
  return total;
}

/** Enqueue → handler completion for `EVENTS` no-op events through engine nodes started with `args`. */
async function throughput(nodes: number, args: string[]): Promise<number> {
  const engines: BenchEngine[] = [];
  try {
    for (let i = 0; i < nodes; i++) engines.push(await benchEngine(args));
    const app = 'ff-bench';
    await deploy(engines[0].client, join(EXAMPLES, 'node-echo'), app, { 'pool-limit': 1, concurrency: 256 });
    for (const engine of engines) await engine.client.call(`${app}@ping`, '').catch(async () => {
      await new Promise((resolve) => setTimeout(resolve, 500));
      await engine.client.call(`${app}@ping`, '');
    });
    const base = await completed(engines, app);
    const started = performance.now();
    await enqueueAll(engines[0].client, `${app}@ping`, EVENTS);
    for (;;) {
      if ((await completed(engines, app)) - base >= EVENTS) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return EVENTS / ((performance.now() - started) / 1000);
  } finally {
    for (const engine of engines) await engine.stop();
  }
}

async function jetstreamThroughput(nodes: number): Promise<number> {
  const nats = await startNatsServer();
  try {
    return await throughput(nodes, ['--storage', nats.url, '--queue', 'jetstream', '--nats', nats.url]);
  } finally {
    await nats.stop();
  }
}

/** The same no-op work on BullMQ + a local Redis, concurrency 64, enqueued 256 in flight. */
async function bullmqThroughput(): Promise<number> {
  const redis = await startRedisServer();
  const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
  const queue = new BullQueue('bench', { connection });
  let done = 0;
  let finish!: () => void;
  const allDone = new Promise<void>((resolve) => (finish = resolve));
  const worker = new BullWorker('bench', async () => 'x', { connection, concurrency: 64 });
  worker.on('completed', () => {
    if (++done === EVENTS) finish();
  });
  try {
    await worker.waitUntilReady();
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < EVENTS) {
          next++;
          await queue.add('noop', 'x', { removeOnComplete: true });
        }
      }),
    );
    await allDone;
    return EVENTS / ((performance.now() - started) / 1000);
  } finally {
    await worker.close();
    await queue.close();
    await redis.stop();
  }
}

export async function queueSection(_context: SectionContext): Promise<BenchRow[]> {
  const bull = await bullmqThroughput();
  const local = await throughput(1, []);
  const one = await jetstreamThroughput(1);
  const two = await jetstreamThroughput(2);
  const section = `Fire-and-forget end to end (${EVENTS.toLocaleString('en-US')} no-op events, enqueue → handler done)`;
  return [
    {
      section,
      name: 'jetstream queue, 1 engine node',
      value: one,
      baselineName: 'BullMQ on local Redis',
      baseline: bull,
      unit: 'events/s',
      better: 'higher',
      target: '>= 2x',
      met: one >= bull * 2,
    },
    { section, name: 'local queue (LMDB), 1 engine node', value: local, baselineName: 'BullMQ on local Redis', baseline: bull, unit: 'events/s', better: 'higher' },
    { section, name: 'jetstream queue, 2 engine nodes', value: two, baselineName: '1 engine node', baseline: one, unit: 'events/s', better: 'higher' },
  ];
}
