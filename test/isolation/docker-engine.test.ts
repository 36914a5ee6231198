import { beforeAll, afterAll } from 'vitest';
import { startDockerd, type Dockerd } from '../helpers/dockerd.js';
import { buildBaseImage } from '../helpers/docker-images.js';
import { describeIsolationThroughEngine } from './through-engine.js';

let dockerd: Dockerd;
const IMAGE = 'cocaine-test/node:1';

beforeAll(async () => {
  dockerd = await startDockerd();
  await buildBaseImage(dockerd.docker, { tag: IMAGE, include: ['sh', 'node'] });
}, 180_000);

afterAll(async () => {
  await dockerd?.stop();
});

describeIsolationThroughEngine({
  type: 'docker',
  args: () => ({ image: IMAGE }),
  engineArgs: () => ['--docker-socket', dockerd.socketPath],
  isolatesNetwork: true,
  async leftovers(nodeId) {
    const containers = await dockerd.docker.listContainers({ all: true, filters: { label: [`cocaine.engine=${nodeId}`] } });
    return containers.map((container) => container.Id);
  },
});
