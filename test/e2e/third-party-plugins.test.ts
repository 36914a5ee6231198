import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, cliJson, startEngine, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';

describe('third-party language plugins from a plugins directory', () => {
  let engine: RunningEngine;
  let rpc: Rpc;
  const pluginsDir = join(ROOT, 'test/fixtures/plugins');

  beforeAll(async () => {
    engine = await startEngine({ args: ['--plugins-dir', pluginsDir], env: { COCAINE_LOG_LEVEL: 'warn' } });
    rpc = connectRpc(engine.address);
  });

  afterAll(async () => {
    rpc?.close();
    await engine?.stop();
  });

  it('lists the plugins it found, with their source; refuses one built for another API version', async () => {
    const info = await cliJson<{ node: { plugins: Array<{ name: string; source: string; apiVersion: number }> } }>(engine, ['info']);
    const names = info.node.plugins.map((plugin) => plugin.name);
    expect(names).toContain('nodealt');
    expect(names).not.toContain('too-new');
    expect(info.node.plugins.find((plugin) => plugin.name === 'nodealt')?.source).toBe(join(pluginsDir, 'nodealt'));
    expect(engine.stderr.join('')).toMatch(/too-new.*plugin API 99.*speaks 1/);
  });

  it('runs an app of a third-party plugin', async () => {
    await cliJson(engine, ['app', 'upload', join(ROOT, 'test/fixtures/nodealt-app')]);
    expect((await rpc.call('nodealt-app@hello')).body.toString()).toBe('hello from nodealt');
  });
});
