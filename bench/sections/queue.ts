import { join } from 'node:path';
import { Queue as BullQueue, Worker as BullWorker } from 'bullmq';
import type { EngineClient } from '../../engine/api/client.js';
import type { SectionContext } from '../section.js';
import type { BenchRow } from '../report.js';
import { startNatsServer } from '../../test/helpers/nats-server.js';
import { startRedisServer } from '../../test/helpers/redis-server.js';
import { EXAMPLES, benchEngine, deploy, type BenchEngine } from './engine-process.js';
import { bareJetStreamPipeline } from './jetstream-pipeline.js';

const EVENTS = 10_000;
/** Enqueues awaited at once, for BullMQ's producer as for ours. */
const IN_FLIGHT = 256;

/** `count` events over one EnqueueStream per engine (producers spread over the nodes), IN_FLIGHT at once in all. */
async function enqueueAll(clients: EngineClient[], target: string, count: number): Promise<void> {
  let next = 0;
  await Promise.all(
    clients.map(async (client) => {
      const stream = client.enqueueStream();
      const lane = async () => {
        while (next < count) {
          next++;
          await stream.enqueue(target, 'x');
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT / clients.length }, lane));
      await stream.close();
    }),
  );
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
    await enqueueAll(engines.map((engine) => engine.client), `${app}@ping`, EVENTS);
    for (;;) {
      if ((await completed(engines, app)) - base >= EVENTS) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return EVENTS / ((performance.now() - started) / 1000);
  } finally {
    for (const engine of engines) await engine.stop();
  }
}

async function withNats<T>(run: (url: string) => Promise<T>): Promise<T> {
  const nats = await startNatsServer();
  try {
    return await run(nats.url);
  } finally {
    await nats.stop();
  }
}

const jetstreamThroughput = (nodes: number) =>
  withNats((url) => throughput(nodes, ['--storage', url, '--queue', 'jetstream', '--nats', url]));

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
  const bare = await withNats((url) => bareJetStreamPipeline(url, EVENTS, IN_FLIGHT));
  const local = await throughput(1, []);
  const one = await jetstreamThroughput(1);
  const two = await jetstreamThroughput(2);
  const section = `Fire-and-forget end to end (${EVENTS.toLocaleString('en-US')} no-op events, enqueue → handler done, ${IN_FLIGHT} enqueues in flight)`;
  const row = (name: string, value: number, baselineName: string, baseline: number): BenchRow => ({ section, name, value, baselineName, baseline, unit: 'events/s', better: 'higher' });
  return [
    { ...row('jetstream queue, 1 engine node', one, 'BullMQ on local Redis', bull), target: '>= 2x', met: one >= bull * 2 },
    row('jetstream queue, 1 engine node', one, 'its NATS work alone (no engine)', bare),
    row('its NATS work alone (no engine)', bare, 'BullMQ on local Redis', bull),
    row('jetstream queue, 2 engine nodes', two, '1 engine node', one),
    row('local queue (LMDB), 1 engine node', local, 'BullMQ on local Redis', bull),
  ];
}
