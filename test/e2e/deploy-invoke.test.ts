import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, cli, cliJson, processesWithEnv, startEngine, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';

interface AppJson {
  name: string;
  state: string;
  profile: string;
  plugin: string;
}

describe('deploy an app and call it (real engine, CLI and gRPC)', () => {
  let engine: RunningEngine;
  let rpc: Rpc;

  beforeAll(async () => {
    engine = await startEngine();
    rpc = connectRpc(engine.address);
  });

  afterAll(async () => {
    rpc?.close();
    await engine?.stop();
  });

  it('uploads an app directory; it is runnable at once but nothing is spawned', async () => {
    const uploaded = await cliJson<AppJson>(engine, ['app', 'upload', join(EXAMPLES, 'node-echo')]);
    expect(uploaded.name).toBe('node-echo');
    expect(uploaded.state).toBe('running');
    expect(uploaded.profile).toBe('default');
    const apps = await cliJson<AppJson[]>(engine, ['app', 'list']);
    expect(apps.map((app) => app.name)).toContain('node-echo');
    expect(processesWithEnv('COCAINE_APP=node-echo\0', engine.process.pid)).toEqual([]);
    const runlist = await cliJson<Record<string, string>>(engine, ['runlist', 'view']);
    expect(runlist['node-echo']).toBe('default');
  });

  it('serves app@event from stdin through the CLI, binary-safe; the first call spawns a worker', async () => {
    const data = Buffer.from([0, 1, 2, 250, 255, 10, 13]);
    const result = await cli(engine, ['invoke', 'node-echo@echo'], data);
    expect(result.code).toBe(0);
    expect(result.stdoutBytes.equals(data)).toBe(true);
    expect(processesWithEnv('COCAINE_APP=node-echo\0', engine.process.pid).length).toBe(1);
    const fromFlag = await cli(engine, ['invoke', 'node-echo@echo', '--data', 'flag data']);
    expect(fromFlag.stdout).toBe('flag data');
  });

  it('serves Invoke, InvokeStream and many multiplexed Session calls', async () => {
    expect((await rpc.call('node-echo@echo', 'unary')).body.toString()).toBe('unary');
    const streamed = await rpc.callStreaming('node-echo@echo', [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]);
    expect(streamed.body.toString()).toBe('abc');
    const session = rpc.session();
    const results = await Promise.all(Array.from({ length: 90 }, (_, i) => session.call('node-echo@echo', `call ${i}`)));
    results.forEach((result, i) => expect(result.body.toString()).toBe(`call ${i}`));
    session.close();
  });

  it('streams results chunk by chunk', async () => {
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-stream')]);
    const result = await rpc.call('node-stream@count', '5');
    expect(result.error).toBeUndefined();
    expect(result.chunks.length).toBe(5);
    const viaCli = await cli(engine, ['invoke', 'node-stream@count', '--data', '3']);
    expect(viaCli.code).toBe(0);
  });

  it('stop refuses calls with FAILED_PRECONDITION and reaps workers; start serves again', async () => {
    await rpc.call('node-echo@echo', 'warm');
    await cliJson(engine, ['app', 'stop', 'node-echo']);
    expect(processesWithEnv('COCAINE_APP=node-echo\0', engine.process.pid)).toEqual([]);
    const refused = await rpc.call('node-echo@echo', 'x');
    expect(refused.error?.status).toBe(9);
    expect(refused.error?.message).toMatch(/stopped/);
    const view = await cliJson<AppJson>(engine, ['app', 'view', 'node-echo']);
    expect(view.state).toBe('stopped');
    await cliJson(engine, ['app', 'start', 'node-echo']);
    expect((await rpc.call('node-echo@echo', 'back')).body.toString()).toBe('back');
  });

  it('manages profiles and the runlist', async () => {
    const dir = (await import('node:fs')).mkdtempSync('/tmp/cocaine-profile-');
    const file = join(dir, 'small.yaml');
    (await import('node:fs')).writeFileSync(file, 'pool-limit: 2\nconcurrency: 4\n');
    await cliJson(engine, ['profile', 'upload', 'small', file]);
    expect(await cliJson<string[]>(engine, ['profile', 'list'])).toContain('small');
    const profile = await cliJson<{ name: string; profile: Record<string, unknown> }>(engine, ['profile', 'view', 'small']);
    expect(profile.profile['pool-limit']).toBe(2);
    expect(profile.profile['queue-limit']).toBe(100);
    await cliJson(engine, ['app', 'restart', 'node-echo', '--profile', 'small']);
    expect((await cliJson<Record<string, string>>(engine, ['runlist', 'view']))['node-echo']).toBe('small');
    expect((await rpc.call('node-echo@echo', 'small')).body.toString()).toBe('small');
  });

  it('shows pools, workers and counters in info', async () => {
    const info = await cliJson<{ node: { apps: Array<{ name: string; poolSize: number; counters: { completed: number } }>; plugins: Array<{ name: string }> } }>(
      engine,
      ['info'],
    );
    const echo = info.node.apps.find((app) => app.name === 'node-echo');
    expect(echo?.poolSize).toBe(1);
    expect(echo?.counters.completed).toBeGreaterThan(0);
    expect(info.node.plugins.map((plugin) => plugin.name)).toEqual(expect.arrayContaining(['node']));
  });

  it('removes an app: calls get NOT_FOUND', async () => {
    await cliJson(engine, ['app', 'remove', 'node-stream']);
    const result = await rpc.call('node-stream@count', '1');
    expect(result.error?.status).toBe(5);
    const missing = await cli(engine, ['app', 'view', 'node-stream']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
  });
});
