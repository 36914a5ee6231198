/**
 * Handler services (protocol version 2): a handler-to-handler call round trip against a client's
 * Session call round trip, and a handler's emit throughput against a client's EnqueueStream.
 * Run alone: `node dist/bench/sections/services.js`.
 */
import { join } from 'node:path';
import { packageRoot } from '../../engine/util/paths.js';
import { printRows, type BenchRow } from '../report.js';
import type { SectionContext } from '../section.js';
import { benchEngine, deploy } from './engine-process.js';

const FIXTURES = join(packageRoot(), 'test/fixtures');
const CALLS = 2_000;
const EVENTS = 10_000;
const IN_FLIGHT = 200;

export async function servicesSection(_context?: SectionContext): Promise<BenchRow[]> {
  const engine = await benchEngine();
  try {
    const { client } = engine;
    await deploy(client, join(FIXTURES, 'services-a'), 'svc-a', { concurrency: 10 });
    await deploy(client, join(FIXTURES, 'services-b'), 'svc-b', { concurrency: 10 });
    await client.call('svc-a@echo', 'warm');
    await client.call('svc-b@ping', '');

    // Call round trip: sequential calls of svc-b@ping from a handler, and from a client session.
    await client.call('svc-a@pingloop', '200');
    const { ms: handlerMs } = JSON.parse((await client.call('svc-a@pingloop', String(CALLS))).toString()) as { ms: number };
    const session = client.session();
    for (let i = 0; i < 200; i++) await session.call('svc-b@ping', '');
    const started = performance.now();
    for (let i = 0; i < CALLS; i++) await session.call('svc-b@ping', '');
    const sessionMs = performance.now() - started;
    session.close();

    // Emit throughput: EnqueueStream (200 in flight), then, once those ran, a handler emitting
    // EVENTS (200 in flight): both count until every event is durably queued.
    const stream = client.enqueueStream();
    let next = 0;
    const enqueueStarted = performance.now();
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < EVENTS) {
          next++;
          await stream.enqueue('svc-b@ping', 'x');
        }
      }),
    );
    const enqueueMs = performance.now() - enqueueStarted;
    await stream.close();
    for (;;) {
      const info = await client.info();
      const done = info.node?.apps.find((app) => app.name === 'svc-b')?.counters?.completed ?? 0;
      if (done >= EVENTS) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const emitStarted = performance.now();
    await client.call('svc-a@fan', JSON.stringify({ n: EVENTS, file: '/dev/null', target: 'svc-b@ping' }), { timeoutMs: 600_000 });
    const emitMs = performance.now() - emitStarted;

    const callRatio = handlerMs / sessionMs;
    const emitRatio = enqueueMs / emitMs;
    return [
      {
        section: 'services',
        name: 'handler call round trip (svc-a → svc-b@ping)',
        value: handlerMs / CALLS,
        baselineName: 'client Session call',
        baseline: sessionMs / CALLS,
        unit: 'ms',
        better: 'lower',
        target: '<= 1.2x',
        met: callRatio <= 1.2,
      },
      {
        section: 'services',
        name: 'handler emit throughput (queued, local queue)',
        value: EVENTS / (emitMs / 1000),
        baselineName: 'client EnqueueStream',
        baseline: EVENTS / (enqueueMs / 1000),
        unit: 'events/s',
        better: 'higher',
        target: '>= 0.8x',
        met: emitRatio >= 0.8,
      },
    ];
  } finally {
    await engine.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printRows(await servicesSection());
}
