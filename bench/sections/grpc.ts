import { join } from 'node:path';
import type { SectionContext } from '../section.js';
import type { BenchRow } from '../report.js';
import { measureBareServerStream, measureBareSession, measureInvoke, measureSession, startBareEchoServer } from '../grpc-baseline.js';
import { EXAMPLES, benchEngine, deploy } from './engine-process.js';

/** Warm blocking calls through the engine beside a bare grpc-js echo server, same client code. */
export async function grpcSection(context: SectionContext): Promise<BenchRow[]> {
  const section = 'Blocking calls, warm (node-echo, one worker)';
  const bare = await startBareEchoServer();
  const engine = await benchEngine();
  try {
    await deploy(engine.client, join(EXAMPLES, 'node-echo'), 'bench-echo', { 'pool-limit': 1, concurrency: 10_000 });
    const target = 'bench-echo@echo';
    await engine.client.call(target, 'warm');
    const window = { durationMs: context.durationMs };
    const bareSession = await measureBareSession({ inFlight: 64, ...window }, bare.address);
    const session = await measureSession(engine.engine.address, target, { inFlight: 64, ...window });
    const bareStream = await measureBareServerStream({ inFlight: 64, ...window }, bare.address);
    const invoke = await measureInvoke(engine.engine.address, target, { inFlight: 64, ...window });
    // Latency at 1 in flight is the figure most sensitive to a noisy neighbour: bare and engine
    // windows alternate, three each, and each side keeps its median p50.
    const bareRounds: number[] = [];
    const invokeRounds: number[] = [];
    const round = { inFlight: 1, durationMs: Math.max(200, Math.round(context.durationMs / 3)) };
    for (let i = 0; i < 3; i++) {
      bareRounds.push((await measureBareServerStream(round, bare.address)).p50Ms);
      invokeRounds.push((await measureInvoke(engine.engine.address, target, round)).p50Ms);
    }
    const bareOne = { p50Ms: median(bareRounds) };
    const invokeOne = { p50Ms: median(invokeRounds) };
    const sessionRatio = session.callsPerSecond / bareSession.callsPerSecond;
    const invokeRatio = invoke.callsPerSecond / bareStream.callsPerSecond;
    const latencyRatio = invokeOne.p50Ms / bareOne.p50Ms;
    return [
      {
        section,
        name: 'Session (multiplexed bidi), 64 in flight',
        value: session.callsPerSecond,
        baselineName: 'bare grpc-js bidi echo',
        baseline: bareSession.callsPerSecond,
        unit: 'calls/s',
        better: 'higher',
        target: '>= 0.6x',
        met: sessionRatio >= 0.6,
      },
      {
        section,
        name: 'Invoke (server-streaming), 64 in flight',
        value: invoke.callsPerSecond,
        baselineName: 'bare grpc-js echo',
        baseline: bareStream.callsPerSecond,
        unit: 'calls/s',
        better: 'higher',
        target: '>= 0.8x',
        met: invokeRatio >= 0.8,
      },
      {
        section,
        name: 'Invoke p50 latency, 1 in flight',
        value: invokeOne.p50Ms,
        baselineName: 'bare grpc-js echo p50',
        baseline: bareOne.p50Ms,
        unit: 'ms',
        better: 'lower',
        target: '<= 2x',
        met: latencyRatio <= 2,
      },
      {
        section,
        name: 'Session p99 latency, 64 in flight',
        value: session.p99Ms,
        baselineName: 'bare bidi p99',
        baseline: bareSession.p99Ms,
        unit: 'ms',
        better: 'lower',
      },
    ];
  } finally {
    await engine.stop();
    await bare.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
