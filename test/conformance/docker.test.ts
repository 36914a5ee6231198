import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { EXAMPLES } from '../helpers/engine.js';
import { startDockerd, type Dockerd } from '../helpers/dockerd.js';
import { buildBaseImage } from '../helpers/docker-images.js';
import { compileSharedObject } from '../helpers/cc.js';
import { describeConformance, type ConformanceOptions } from './kit.js';

let dockerd: Dockerd;
const IMAGE = 'cocaine-test/runtimes:1';

beforeAll(async () => {
  dockerd = await startDockerd();
  await buildBaseImage(dockerd.docker, { tag: IMAGE, include: ['sh', 'node', 'python3', 'perl'] });
}, 240_000);

afterAll(async () => {
  await dockerd?.stop();
});

/** The same kit as the process isolate, every worker in a container (read-only root, no network). */
function inDocker(options: Omit<ConformanceOptions, 'isolate' | 'engineArgs' | 'slow'>): ConformanceOptions {
  return {
    ...options,
    slow: 2,
    get isolate() {
      return { type: 'docker', args: { image: IMAGE } };
    },
    get engineArgs() {
      return ['--docker-socket', dockerd.socketPath];
    },
  };
}

describeConformance(inDocker({ plugin: 'node', appDir: join(EXAMPLES, 'node-conformance'), sessions: 'parallel' }));
describeConformance(inDocker({ plugin: 'python', appDir: join(EXAMPLES, 'python-conformance'), sessions: 'parallel' }));
describeConformance(inDocker({ plugin: 'perl', appDir: join(EXAMPLES, 'perl-conformance'), sessions: 'serial' }));
describeConformance(
  inDocker({
    plugin: 'native',
    appDir: join(EXAMPLES, 'native-echo'),
    sessions: 'serial',
    prepare: () => compileSharedObject(join(EXAMPLES, 'native-echo', 'echo.c'), join(EXAMPLES, 'native-echo', 'echo.so')),
  }),
);
