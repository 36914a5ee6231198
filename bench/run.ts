/**
 * `npm run bench`: every figure beside its baseline measured in the same run, as a ratio.
 * Sections: grpc (blocking calls), cold (cold start), plugins, docker, queue, services (handler call/emit). `--only a,b` picks some.
 */
import { parseArgs } from 'node:util';
import { printRows, type BenchRow } from './report.js';
import type { Section, SectionContext } from './section.js';

const SECTIONS: Record<string, () => Promise<Section>> = {
  grpc: async () => (await import('./sections/grpc.js')).grpcSection,
  cold: async () => (await import('./sections/cold.js')).coldSection,
  plugins: async () => (await import('./sections/plugins.js')).pluginsSection,
  docker: async () => (await import('./sections/docker.js')).dockerSection,
  queue: async () => (await import('./sections/queue.js')).queueSection,
  services: async () => (await import('./sections/services.js')).servicesSection,
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      duration: { type: 'string', default: '3000' },
      samples: { type: 'string', default: '9' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: npm run bench -- [--only ${Object.keys(SECTIONS).join(',')}] [--duration MS] [--samples N]\n`);
    return;
  }
  const chosen = values.only ? values.only.split(',') : Object.keys(SECTIONS);
  const context: SectionContext = { durationMs: Number(values.duration), samples: Number(values.samples) };
  const rows: BenchRow[] = [];
  let failed = false;
  for (const name of chosen) {
    const load = SECTIONS[name];
    if (!load) throw new Error(`unknown section "${name}" (known: ${Object.keys(SECTIONS).join(', ')})`);
    process.stderr.write(`bench: ${name}...\n`);
    try {
      const sectionRows = await (await load())(context);
      printRows(sectionRows);
      rows.push(...sectionRows);
    } catch (error) {
      failed = true;
      process.stdout.write(`\n## ${name}\nfailed: ${(error as Error).stack ?? error}\n`);
    }
  }
  const missed = rows.filter((row) => row.met === false);
  process.stdout.write(`\n${rows.length} figures, ${missed.length} targets not met${failed ? ', some sections failed' : ''}\n`);
  process.exitCode = failed ? 1 : 0;
}

void main();
