import { join } from 'node:path';
import type { SectionContext } from '../section.js';
import type { BenchRow } from '../report.js';
import { engineColdStart, medianOf, spawnToFirstOutput } from '../cold-start.js';
import { EXAMPLES, benchEngine, deploy } from './engine-process.js';

/** First event for an app with no worker → first byte, beside a bare `node` spawn → first output. */
export async function coldSection(context: SectionContext): Promise<BenchRow[]> {
  const engine = await benchEngine();
  try {
    await deploy(engine.client, join(EXAMPLES, 'node-echo'), 'cold-echo', { 'pool-limit': 1 });
    const bare = await medianOf(context.samples, () => spawnToFirstOutput(process.execPath, ['-e', 'process.stdout.write("x")']));
    const cold = await engineColdStart(engine.client, 'cold-echo', 'echo', 'x', context.samples);
    const bound = bare * 1.5 + 20;
    return [
      {
        section: 'Cold start (process isolate)',
        name: 'first event → first byte, node plugin',
        value: cold,
        baselineName: 'bare node spawn → first output',
        baseline: bare,
        unit: 'ms',
        better: 'lower',
        target: `<= 1.5x + 20 ms (${bound.toFixed(1)} ms)`,
        met: cold <= bound,
      },
    ];
  } finally {
    await engine.stop();
  }
}
