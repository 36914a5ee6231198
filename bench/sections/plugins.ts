import { join } from 'node:path';
import type { SectionContext } from '../section.js';
import type { BenchRow } from '../report.js';
import { engineColdStart, medianOf, spawnToFirstOutput } from '../cold-start.js';
import { measureSession } from '../grpc-baseline.js';
import { compileSharedObject } from '../../test/helpers/cc.js';
import { resolveInterpreter } from '../../plugins/resolve-interpreter.js';
import { EXAMPLES, benchEngine, deploy } from './engine-process.js';

interface PluginCase {
  plugin: string;
  app: string;
  /** The bare interpreter's spawn → first output, the cold-start baseline. */
  bare: () => [string, string[]];
  bareName: string;
  prepare?: () => Promise<void>;
}

const CASES: PluginCase[] = [
  { plugin: 'node', app: 'node-echo', bare: () => [process.execPath, ['-e', 'process.stdout.write("x")']], bareName: 'bare node' },
  { plugin: 'python', app: 'python-echo', bare: () => [resolveInterpreter('python3'), ['-c', 'print(1)']], bareName: 'bare python3' },
  { plugin: 'perl', app: 'perl-echo', bare: () => [resolveInterpreter('perl'), ['-e', 'print 1']], bareName: 'bare perl' },
  {
    plugin: 'native',
    app: 'native-echo',
    bare: () => [process.execPath, ['-e', 'process.stdout.write("x")']],
    bareName: 'bare node (the native host)',
    prepare: () => compileSharedObject(join(EXAMPLES, 'native-echo', 'echo.c'), join(EXAMPLES, 'native-echo', 'echo.so')),
  },
];

/** Per plugin: cold start beside its bare interpreter, warm throughput beside the Node plugin. */
export async function pluginsSection(context: SectionContext): Promise<BenchRow[]> {
  const engine = await benchEngine();
  const rows: BenchRow[] = [];
  try {
    const warm = new Map<string, number>();
    const cold = new Map<string, number>();
    for (const entry of CASES) {
      await entry.prepare?.();
      await deploy(engine.client, join(EXAMPLES, entry.app), entry.app, { 'pool-limit': 1, concurrency: 10_000 });
      const [command, args] = entry.bare();
      const bare = await medianOf(context.samples, () => spawnToFirstOutput(command, args));
      const coldStart = await engineColdStart(engine.client, entry.app, 'echo', 'x', context.samples);
      cold.set(entry.plugin, coldStart);
      rows.push({
        section: 'Plugins: cold start (first event → first byte)',
        name: `${entry.plugin} plugin`,
        value: coldStart,
        baselineName: `${entry.bareName} spawn → first output`,
        baseline: bare,
        unit: 'ms',
        better: 'lower',
      });
      const measured = await measureSession(engine.engine.address, `${entry.app}@echo`, { inFlight: 64, durationMs: context.durationMs });
      warm.set(entry.plugin, measured.callsPerSecond);
    }
    for (const entry of CASES) {
      rows.push({
        section: 'Plugins: warm throughput (Session, 64 in flight, one worker)',
        name: `${entry.plugin} plugin`,
        value: warm.get(entry.plugin)!,
        baselineName: 'node plugin',
        baseline: warm.get('node')!,
        unit: 'calls/s',
        better: 'higher',
      });
    }
    for (const entry of CASES.slice(1)) {
      rows.push({
        section: 'Plugins: cold start beside the node plugin',
        name: `${entry.plugin} plugin`,
        value: cold.get(entry.plugin)!,
        baselineName: 'node plugin',
        baseline: cold.get('node')!,
        unit: 'ms',
        better: 'lower',
      });
    }
    return rows;
  } finally {
    await engine.stop();
  }
}
