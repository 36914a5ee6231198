import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXAMPLES, cliJson, isAlive, startEngine, stopAllEngines, tempDir, waitFor } from '../helpers/engine.js';
import { connectRpc } from '../helpers/rpc.js';

afterAll(stopAllEngines);

async function engineWithSlowApp(dataDir?: string) {
  const engine = await startEngine({ dataDir, keepData: true });
  const rpc = connectRpc(engine.address);
  const profile = join(tempDir('profile'), 'p.yaml');
  writeFileSync(profile, 'pool-limit: 2\nconcurrency: 5\nheartbeat-timeout: 30\n');
  await cliJson(engine, ['profile', 'upload', 'p', profile]);
  await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-slow'), '--profile', 'p']);
  return { engine, rpc };
}

describe('engine lifecycle: shutdown and crashes leave no process behind', () => {
  it('SIGTERM drains calls in flight, terminates and reaps workers, exits 0', async () => {
    const { engine, rpc } = await engineWithSlowApp();
    const pid = Number((await rpc.call('node-slow@pid')).body.toString());
    const inFlight = rpc.call('node-slow@sleep', '700');
    await new Promise((resolve) => setTimeout(resolve, 150));
    const exit = engine.stop();
    const result = await inFlight;
    expect(result.error).toBeUndefined();
    expect(result.body.toString()).toBe('slept 700');
    expect((await exit).code).toBe(0);
    expect(isAlive(pid)).toBe(false);
    rpc.close();
  });

  it('workers exit by themselves when their engine is SIGKILLed', async () => {
    const { engine, rpc } = await engineWithSlowApp();
    const pids = (await Promise.all([rpc.call('node-slow@pid'), rpc.call('node-slow@pid')])).map((result) => Number(result.body.toString()));
    await engine.kill();
    rpc.close();
    await waitFor('workers to exit after their engine died', () => pids.every((pid) => !isAlive(pid)), 5_000);
  });

  it('the next engine kills a stopped worker left by a SIGKILLed engine', async () => {
    const dataDir = tempDir('orphans');
    const first = await engineWithSlowApp(dataDir);
    const pid = Number((await first.rpc.call('node-slow@pid')).body.toString());
    process.kill(pid, 'SIGSTOP'); // frozen: it cannot notice its engine is gone
    await first.engine.kill();
    first.rpc.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(isAlive(pid)).toBe(true);
    const second = await startEngine({ dataDir });
    await waitFor('the orphan to be killed at start', () => !isAlive(pid), 5_000);
    await second.stop();
  });

  it('crashlogs keep the reason and the last output lines', async () => {
    const { engine, rpc } = await engineWithSlowApp();
    const crashed = await rpc.call('node-slow@crash');
    expect(crashed.error?.status).toBe(14);
    expect(crashed.error?.message).toContain('crashing on purpose');
    const list = await cliJson<Array<{ id: string; reason: string }>>(engine, ['crashlog', 'list', 'node-slow']);
    expect(list[0].reason).toMatch(/code 3/);
    const entry = await cliJson<{ lines: string[] }>(engine, ['crashlog', 'view', 'node-slow', list[0].id]);
    expect(entry.lines.join('\n')).toContain('crashing on purpose');
    rpc.close();
    await engine.stop();
  });

  it('kills a worker stuck in a busy loop after heartbeat-timeout and fails its call with UNAVAILABLE', async () => {
    const engine = await startEngine();
    const rpc = connectRpc(engine.address);
    const profile = join(tempDir('profile'), 'hb.yaml');
    writeFileSync(profile, 'heartbeat-timeout: 1\n');
    await cliJson(engine, ['profile', 'upload', 'hb', profile]);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-slow'), '--profile', 'hb']);
    const pid = Number((await rpc.call('node-slow@pid')).body.toString());
    const hung = await rpc.call('node-slow@hang');
    expect(hung.error?.status).toBe(14);
    expect(hung.error?.message).toMatch(/heartbeat/);
    expect(hung.ms).toBeLessThan(4_000);
    await waitFor('the hung worker to be reaped', () => !isAlive(pid));
    expect((await rpc.call('node-slow@pid')).error).toBeUndefined();
    rpc.close();
    await engine.stop();
  });

  it('scales an idle pool to zero after idle-timeout', async () => {
    const engine = await startEngine();
    const rpc = connectRpc(engine.address);
    const profile = join(tempDir('profile'), 'idle.yaml');
    writeFileSync(profile, 'idle-timeout: 1\n');
    await cliJson(engine, ['profile', 'upload', 'idle', profile]);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-slow'), '--profile', 'idle']);
    const pid = Number((await rpc.call('node-slow@pid')).body.toString());
    const poolSize = async () => (await rpc.client.info()).node?.apps.find((app) => app.name === 'node-slow')?.poolSize;
    expect(await poolSize()).toBe(1);
    await waitFor('the pool to scale to zero', async () => (await poolSize()) === 0, 6_000, 200);
    expect(isAlive(pid)).toBe(false);
    rpc.close();
    await engine.stop();
  });
});
