/**
 * A runtime that connects the moment its container starts, before docker's `start` has answered
 * the engine, still gets its handshake read. (The engine began listening for the worker's
 * connection only after spawn() returned, so such a connection was lost: the worker waited, then
 * exited on its disown timeout "before its handshake". The Perl runtime, quick to start, hit it in
 * the docker conformance kit.)
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBaseImage } from '../helpers/docker-images.js';
import { startDockerd, type Dockerd } from '../helpers/dockerd.js';
import { ROOT, cliJson, startEngine, tempDir, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';
import { codeOf } from './checks-engine.js';

const FIXTURE = join(ROOT, 'test/fixtures/faulty-runtimes');
const IMAGE = 'cocaine-test/runtimes:1';

/** A plugin directory with the "quick" plugin: connect-first, then the fixture's Python runtime. */
function quickPlugin(): string {
  const plugins = tempDir('quick-plugins');
  const runtime = join(plugins, 'quick', 'runtime');
  mkdirSync(runtime, { recursive: true });
  execFileSync('cc', ['-O2', '-Wall', '-Werror', '-o', join(runtime, 'connect-first'), join(FIXTURE, 'connect-first.c')]);
  copyFileSync(join(FIXTURE, 'plugins/faulty/runtime/faulty_worker.py'), join(runtime, 'faulty_worker.py'));
  writeFileSync(
    join(plugins, 'quick', 'index.js'),
    `import { posix } from 'node:path';
export default {
  name: 'quick',
  apiVersion: 1,
  version: '1.0.0',
  runtimeDir: ${JSON.stringify(runtime)},
  launch(context) {
    const file = (name) => posix.join(context.pluginDir, name);
    return { command: file('connect-first'), args: ['python3', '-u', '-B', file('faulty_worker.py')], env: {} };
  },
};
`,
  );
  return plugins;
}

describe('docker isolate: a runtime that connects before the container start returns', () => {
  let dockerd: Dockerd;
  let engine: RunningEngine;
  let rpc: Rpc;

  beforeAll(async () => {
    dockerd = await startDockerd();
    await buildBaseImage(dockerd.docker, { tag: IMAGE, include: ['sh', 'node', 'python3', 'perl'] });
    engine = await startEngine({ args: ['--plugins-dir', quickPlugin(), '--docker-socket', dockerd.socketPath] });
    rpc = connectRpc(engine.address);
    const profile = join(tempDir('quick-profile'), 'quick.json');
    writeFileSync(profile, JSON.stringify({ 'pool-limit': 1, 'startup-timeout': 15, 'heartbeat-timeout': 5, isolate: { type: 'docker', args: { image: IMAGE } } }));
    await cliJson(engine, ['profile', 'upload', 'quick', profile]);
    const app = tempDir('quick-app');
    copyFileSync(join(FIXTURE, 'app/main.py'), join(app, 'main.py'));
    writeFileSync(join(app, 'manifest.yaml'), 'name: quick\nplugin: quick\nentrypoint: main.py\n');
    await cliJson(engine, ['app', 'upload', app, '--name', 'quick', '--profile', 'quick']);
  }, 300_000);

  afterAll(async () => {
    rpc?.close();
    await engine?.stop();
    await dockerd?.stop();
  });

  it('handshakes and serves, worker after worker', async () => {
    for (let round = 1; round <= 3; round++) {
      const result = await rpc.call('quick@echo', `round ${round}`, { timeoutMs: 60_000 });
      expect(codeOf(result), `round ${round}: ${result.error?.message}`).toBe('OK');
      expect(result.body.toString()).toBe(`round ${round}`);
      // A fresh worker (and container) for the next round.
      await cliJson(engine, ['app', 'stop', 'quick']);
      await cliJson(engine, ['app', 'start', 'quick', '--profile', 'quick']);
    }
  }, 240_000);
});
