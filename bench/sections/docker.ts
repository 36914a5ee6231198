import { join } from 'node:path';
import type { SectionContext } from '../section.js';
import type { BenchRow } from '../report.js';
import { engineColdStart, medianOf, spawnToFirstOutput } from '../cold-start.js';
import { startDockerd } from '../../test/helpers/dockerd.js';
import { buildBaseImage } from '../../test/helpers/docker-images.js';
import { EXAMPLES, benchEngine, deploy } from './engine-process.js';

const IMAGE = 'cocaine-bench/node:1';

/** Cold start per isolate (first event → first byte) beside a bare `docker run` of the same image. */
export async function dockerSection(context: SectionContext): Promise<BenchRow[]> {
  const dockerd = await startDockerd();
  try {
    await buildBaseImage(dockerd.docker, { tag: IMAGE, include: ['sh', 'node'] });
    const engine = await benchEngine(['--docker-socket', dockerd.socketPath]);
    try {
      const app = join(EXAMPLES, 'node-echo');
      await deploy(engine.client, app, 'iso-process', { 'pool-limit': 1 });
      await deploy(engine.client, app, 'iso-cgroup', { 'pool-limit': 1, isolate: { type: 'cgroup', args: { memory: '256M' } } });
      await deploy(engine.client, app, 'iso-docker', { 'pool-limit': 1, isolate: { type: 'docker', args: { image: IMAGE, memory: '256M' } } });
      const samples = Math.max(5, Math.min(context.samples, 9));
      const dockerRun = await medianOf(samples, () =>
        spawnToFirstOutput('docker', ['-H', `unix://${dockerd.socketPath}`, 'run', '--rm', '--network', 'none', IMAGE, 'node', '-e', 'process.stdout.write("x")'], {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: process.env.HOME ?? '/root',
        }),
      );
      const process_ = await engineColdStart(engine.client, 'iso-process', 'echo', 'x', samples);
      const cgroup = await engineColdStart(engine.client, 'iso-cgroup', 'echo', 'x', samples);
      const docker = await engineColdStart(engine.client, 'iso-docker', 'echo', 'x', samples);
      const section = 'Cold start per isolate (node-echo, first event → first byte)';
      return [
        {
          section,
          name: 'docker isolate',
          value: docker,
          baselineName: 'bare `docker run --network none` node → first output',
          baseline: dockerRun,
          unit: 'ms',
          better: 'lower',
          target: '<= 1.3x',
          met: docker <= dockerRun * 1.3,
        },
        { section, name: 'cgroup isolate', value: cgroup, baselineName: 'process isolate', baseline: process_, unit: 'ms', better: 'lower' },
        { section, name: 'docker isolate', value: docker, baselineName: 'process isolate', baseline: process_, unit: 'ms', better: 'lower' },
      ];
    } finally {
      await engine.stop();
    }
  } finally {
    await dockerd.stop();
  }
}
