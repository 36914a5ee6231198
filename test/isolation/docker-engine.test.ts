import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, cli, cliJson, startEngine } from '../helpers/engine.js';
import { connectRpc } from '../helpers/rpc.js';
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

describe('app upload --docker', () => {
  it('builds an image for the app through the Docker API and runs the app in it', async () => {
    const engine = await startEngine({ args: ['--docker-socket', dockerd.socketPath] });
    const rpc = connectRpc(engine.address);
    try {
      const upload = await cli(engine, ['app', 'upload', join(EXAMPLES, 'node-echo'), '--docker', dockerd.socketPath, '--base-image', IMAGE]);
      expect(upload.code, upload.stderr).toBe(0);
      expect(upload.stderr).toMatch(/docker: .*Step|docker: .*Successfully/);
      const view = await cliJson<{ profile: string }>(engine, ['app', 'view', 'node-echo']);
      expect(view.profile).toBe('node-echo-docker');
      const profile = await cliJson<{ profile: { isolate: { type: string; args: { image: string } } } }>(engine, ['profile', 'view', 'node-echo-docker']);
      expect(profile.profile.isolate.type).toBe('docker');
      expect(profile.profile.isolate.args.image).toMatch(/^cocaine-app\/node-echo:[0-9a-f]{12}$/);
      expect((await rpc.call('node-echo@echo', 'from a built image', { timeoutMs: 30_000 })).body.toString()).toBe('from a built image');
      const containers = await dockerd.docker.listContainers({ filters: { label: ['cocaine.app=node-echo'] } });
      expect(containers.map((container) => container.Image)).toContain(profile.profile.isolate.args.image);
    } finally {
      rpc.close();
      await engine.stop();
    }
  });
});
