import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXAMPLES, cli, cliJson, startEngine, stopAllEngines, tempDir } from '../helpers/engine.js';
import { connectRpc } from '../helpers/rpc.js';

afterAll(stopAllEngines);

const YEAR_S = 365 * 24 * 3600;

function defaultRunDir(dataDir: string): string {
  return join(tmpdir(), `cocaine-${createHash('sha1').update(dataDir).digest('hex').slice(0, 10)}`);
}

describe('limits through a real engine', () => {
  it('the maximal startup-timeout, idle-timeout and termination-timeout work (no timer fires at once)', async () => {
    const engine = await startEngine();
    const rpc = connectRpc(engine.address);
    const profile = join(tempDir('profile'), 'long.yaml');
    writeFileSync(profile, `startup-timeout: ${YEAR_S}\nidle-timeout: ${YEAR_S}\ntermination-timeout: ${YEAR_S}\nrequest-timeout: ${YEAR_S}\n`);
    await cliJson(engine, ['profile', 'upload', 'long', profile]);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-slow'), '--profile', 'long']);
    const first = await rpc.call('node-slow@pid');
    expect(first.error).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const second = await rpc.call('node-slow@pid');
    expect(second.error).toBeUndefined();
    // The same worker: it was neither killed as "not handshaken" nor stopped as idle.
    expect(second.body.toString()).toBe(first.body.toString());
    expect(await cliJson<unknown[]>(engine, ['crashlog', 'list', 'node-slow'])).toEqual([]);
    rpc.close();
    await engine.stop();
  });

  it('crashlog-limit 0 keeps no crashlog, without an error', async () => {
    const engine = await startEngine();
    const rpc = connectRpc(engine.address);
    const profile = join(tempDir('profile'), 'none.yaml');
    writeFileSync(profile, 'crashlog-limit: 0\n');
    await cliJson(engine, ['profile', 'upload', 'none', profile]);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-slow'), '--profile', 'none']);
    const crashed = await rpc.call('node-slow@crash');
    expect(crashed.error?.message).toContain('exited with code 3');
    expect(await cliJson<unknown[]>(engine, ['crashlog', 'list', 'node-slow'])).toEqual([]);
    const logs = await cli(engine, ['app', 'logs', 'node-slow', '--lines', '100']);
    expect(logs.stdout).toContain('exited with code 3');
    expect(logs.stdout).not.toContain('could not save crashlog');
    rpc.close();
    await engine.stop();
  });

  it('refuses at upload what used to fail only at spawn, naming the field', async () => {
    const engine = await startEngine();
    const dir = tempDir('profile');
    const cases: Array<[string, RegExp]> = [
      ['isolate: firecracker\n', /field "isolate\.type" must be one of "process", "cgroup", "docker"/],
      ['isolate: {type: cgroup, args: {memory: 1}}\n', /field "isolate\.args\.memory" must be a byte count \(integer >= 4194304\)/],
      [`startup-timeout: 1e10\n`, /field "startup-timeout" must be a number > 0 and <= 31536000/],
    ];
    for (const [text, expected] of cases) {
      const file = join(dir, 'bad.yaml');
      writeFileSync(file, text);
      const result = await cli(engine, ['profile', 'upload', 'bad', file]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(expected);
    }
    const app = tempDir('app');
    writeFileSync(join(app, 'index.js'), 'export function ping() { return "pong"; }\n');
    writeFileSync(join(app, 'package.json'), '{"type":"module"}\n');
    writeFileSync(join(app, 'manifest.json'), JSON.stringify({ name: 'big-env', plugin: 'node', entrypoint: 'index.js', environment: { BIG: 'x'.repeat(200 * 1024) } }));
    const upload = await cli(engine, ['app', 'upload', app]);
    expect(upload.code).not.toBe(0);
    expect(upload.stderr).toMatch(/field "environment\.BIG" must be at most 65536 bytes/);
    await engine.stop();
  });
});

describe('the run directory', () => {
  it('is removed at shutdown, after workers used it', async () => {
    const engine = await startEngine({ keepData: true });
    const runDir = defaultRunDir(engine.dataDir);
    const rpc = connectRpc(engine.address);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-echo')]);
    expect((await rpc.call('node-echo@ping', 'x')).error).toBeUndefined();
    expect(existsSync(join(runDir, 's'))).toBe(true);
    rpc.close();
    expect((await engine.stop()).code).toBe(0);
    expect(existsSync(runDir)).toBe(false);
  });

  it('is removed by an engine stopped right after it said it listens (signal handlers are in place by then)', async () => {
    for (let i = 0; i < 3; i++) {
      const engine = await startEngine({ keepData: true });
      expect(await engine.stop()).toEqual({ code: 0, signal: null });
      expect(existsSync(defaultRunDir(engine.dataDir))).toBe(false);
    }
  });

  it('a given run directory that existed is kept with what else is in it; only the socket directory goes', async () => {
    const runDir = tempDir('run');
    writeFileSync(join(runDir, 'not-the-engines'), 'x');
    const engine = await startEngine({ env: { COCAINE_RUN_DIR: runDir } });
    expect(existsSync(join(runDir, 's'))).toBe(true);
    expect(await engine.stop()).toEqual({ code: 0, signal: null });
    expect(readdirSync(runDir)).toEqual(['not-the-engines']);
  });

  it('is removed when the engine fails to start after creating it', async () => {
    const dataDir = tempDir('data');
    // The local queue cannot open a directory that is a file.
    writeFileSync(join(dataDir, 'queue'), 'not a directory');
    await expect(startEngine({ dataDir })).rejects.toThrow(/exited/);
    expect(existsSync(defaultRunDir(dataDir))).toBe(false);
  });

  it('a default run directory left by a killed engine is removed by the next one at shutdown', async () => {
    const dataDir = tempDir('data');
    mkdirSync(join(defaultRunDir(dataDir), 's'), { recursive: true });
    const engine = await startEngine({ dataDir });
    expect(await engine.stop()).toEqual({ code: 0, signal: null });
    expect(existsSync(defaultRunDir(dataDir))).toBe(false);
  });
});
