import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workerBaseEnv } from '../../engine/isolate/clean-env.js';
import { LineSplitter, MAX_LINE_BYTES } from '../../engine/isolate/output-lines.js';
import { PidRegistry, processStartTime } from '../../engine/isolate/pid-registry.js';
import { ProcessIsolate } from '../../engine/isolate/process.js';
import type { OutputStream, SpawnSpec } from '../../engine/isolate/types.js';
import { describeIsolateContract } from '../contracts/isolate.contract.js';

describeIsolateContract('process', async () => {
  const runDir = mkdtempSync(join(tmpdir(), 'process-isolate-run-'));
  const engineId = 'engine-contract';
  const make = () => new ProcessIsolate({ runDir, engineId });
  return {
    isolate: make(),
    engineId,
    reopen: async () => make(),
    cleanup: async () => rmSync(runDir, { recursive: true, force: true }),
  };
});

describe('ProcessIsolate specifics', () => {
  let runDir: string;
  let appDir: string;

  beforeAll(() => {
    runDir = mkdtempSync(join(tmpdir(), 'process-isolate-run-'));
    appDir = mkdtempSync(join(tmpdir(), 'process-isolate-app-'));
  });
  afterAll(() => {
    rmSync(runDir, { recursive: true, force: true });
    rmSync(appDir, { recursive: true, force: true });
  });

  const spec = (script: string, workerId = `w-${Math.random().toString(36).slice(2)}`): SpawnSpec => ({
    workerId,
    app: 'app',
    command: '/bin/sh',
    args: ['-c', script],
    env: { PATH: '/usr/bin:/bin' },
    appDir,
    socketDir: appDir,
    pluginDir: appDir,
    limits: {},
    isolateArgs: {},
  });

  it('records the worker with its start time while it runs and forgets it at exit', async () => {
    const isolate = new ProcessIsolate({ runDir, engineId: 'e-rec' });
    const worker = await isolate.spawn(spec('read x < /dev/null; sleep 0.3', 'rec-1'));
    const record = JSON.parse(readFileSync(join(runDir, 'workers', 'rec-1.json'), 'utf8'));
    expect(record).toEqual({ pid: worker.pid, pgid: worker.pid, workerId: 'rec-1', engineId: 'e-rec', startTime: processStartTime(worker.pid!) });
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(join(runDir, 'workers', 'rec-1.json'))).toBe(false);
    await isolate.close();
  });

  it('never kills a process whose pid was recycled (start time differs)', async () => {
    const bystander = spawn('/bin/sleep', ['30'], { stdio: 'ignore', detached: true });
    await new Promise((resolve) => bystander.once('spawn', resolve));
    const registry = new PidRegistry(runDir);
    registry.record({ pid: bystander.pid!, pgid: bystander.pid!, workerId: 'recycled', engineId: 'e-old', startTime: '1' });
    await new ProcessIsolate({ runDir, engineId: 'e-new' }).cleanupOrphans('e-old');
    expect(processStartTime(bystander.pid!)).toBeDefined();
    expect(registry.list().map((r) => r.workerId)).not.toContain('recycled');
    bystander.kill('SIGKILL');
  });

  it('cleanupOrphans leaves the calling instance its own live workers', async () => {
    const isolate = new ProcessIsolate({ runDir, engineId: 'e-own' });
    const worker = await isolate.spawn(spec('sleep 30'));
    await isolate.cleanupOrphans('e-own');
    expect(processStartTime(worker.pid!)).toBeDefined();
    await isolate.close();
    expect((await worker.exited).signal).toBe('SIGKILL');
  });

  it('caps lines at 8 KiB and keeps the output before the first listener', async () => {
    const isolate = new ProcessIsolate({ runDir, engineId: 'e-lines' });
    const worker = await isolate.spawn(spec(`printf 'early\\n'; head -c 20000 /dev/zero | tr '\\0' a; printf '\\nend'`));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const lines: Array<[OutputStream, string]> = [];
    worker.onOutput((stream, line) => lines.push([stream, line]));
    await worker.exited;
    expect(lines.map(([, line]) => line.length)).toEqual([5, MAX_LINE_BYTES, MAX_LINE_BYTES, 20000 - 2 * MAX_LINE_BYTES, 3]);
    expect(lines[0]).toEqual(['stdout', 'early']);
    await isolate.close();
  });

  it('hands raw chunks to data listeners and keeps at most 1 MiB written before the first listener', async () => {
    const isolate = new ProcessIsolate({ runDir, engineId: 'e-data' });
    const worker = await isolate.spawn(spec(`head -c 3000000 /dev/zero | tr '\\0' a; printf 'x\\n' >&2`));
    await worker.exited;
    const received = { stdout: 0, stderr: 0 };
    worker.onOutputData((stream, chunk) => (received[stream] += chunk.length));
    // The early buffer is full of stdout: the later stderr line did not fit.
    expect(received).toEqual({ stdout: 1024 * 1024, stderr: 0 });
    await isolate.close();
  });

  it('resolves exited soon when the worker dies and left something holding its pipes', async () => {
    const isolate = new ProcessIsolate({ runDir, engineId: 'e-pipes' });
    const worker = await isolate.spawn(spec('sleep 60 & exit 4'));
    const started = Date.now();
    expect(await worker.exited).toEqual({ code: 4, signal: null });
    expect(Date.now() - started).toBeLessThan(3000);
    await isolate.close();
  });

  it('rejects a spawn into a missing app directory with spawn_failed naming it', async () => {
    const isolate = new ProcessIsolate({ runDir, engineId: 'e-dir' });
    await expect(isolate.spawn({ ...spec('true'), appDir: '/nonexistent/app-dir' })).rejects.toMatchObject({
      code: 'spawn_failed',
      message: expect.stringContaining('/nonexistent/app-dir'),
    });
    expect(readdirSync(join(runDir, 'workers')).filter((f) => f.includes('dir'))).toEqual([]);
  });
});

describe('LineSplitter', () => {
  it('decodes a UTF-8 character split across reads and drops \\r before \\n', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line));
    const bytes = Buffer.from('héllo\r\nwörld');
    splitter.push(bytes.subarray(0, 2));
    splitter.push(bytes.subarray(2, 10));
    splitter.push(bytes.subarray(10));
    splitter.end();
    expect(lines).toEqual(['héllo', 'wörld']);
  });
});

describe('workerBaseEnv', () => {
  it('keeps PATH (without shims), HOME, LANG, LC_ALL, TZ and nothing else', () => {
    const env = workerBaseEnv({
      PATH: '/root/.pyenv/shims:/root/.pyenv/plugins/pyenv-virtualenv/shims:/usr/local/bin:/usr/bin',
      HOME: '/home/x',
      TZ: 'UTC',
      NODE_OPTIONS: '--require x',
      NODE_EXTRA_CA_CERTS: '/ca.pem',
      SECRET: 's',
    });
    expect(env).toEqual({ PATH: '/usr/local/bin:/usr/bin', HOME: '/home/x', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', TZ: 'UTC' });
  });
});
