import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CgroupIsolate } from '../../engine/isolate/cgroup.js';
import { cgroupPids, workerSegments } from '../../engine/isolate/cgroup-fs.js';
import type { OutputStream, ResourceLimits, SpawnSpec, WorkerProcess } from '../../engine/isolate/types.js';
import { describeIsolateContract } from '../contracts/isolate.contract.js';

const PYTHON = '/usr/bin/python3';

describeIsolateContract('cgroup', async () => {
  const runDir = mkdtempSync(join(tmpdir(), 'cgroup-isolate-run-'));
  const engineId = `contract-${randomUUID().slice(0, 8)}`;
  const make = () => new CgroupIsolate({ runDir, engineId });
  return {
    isolate: make(),
    engineId,
    reopen: async () => make(),
    cleanup: async () => {
      await make().cleanupOrphans(engineId);
      rmSync(runDir, { recursive: true, force: true });
    },
  };
});

describe('CgroupIsolate limits', () => {
  let runDir: string;
  let appDir: string;
  let isolate: CgroupIsolate;
  const engineId = `limits-${randomUUID().slice(0, 8)}`;

  beforeAll(() => {
    runDir = mkdtempSync(join(tmpdir(), 'cgroup-isolate-run-'));
    appDir = mkdtempSync(join(tmpdir(), 'cgroup-isolate-app-'));
    isolate = new CgroupIsolate({ runDir, engineId });
  });
  afterAll(async () => {
    await isolate.close();
    await isolate.cleanupOrphans(engineId);
    rmSync(runDir, { recursive: true, force: true });
    rmSync(appDir, { recursive: true, force: true });
  });

  const spec = (command: string, args: string[], limits: ResourceLimits, app = 'limits-app'): SpawnSpec => ({
    workerId: `w-${randomUUID().slice(0, 8)}`,
    app,
    command,
    args,
    env: { PATH: '/usr/bin:/bin' },
    appDir,
    socketDir: appDir,
    pluginDir: appDir,
    limits,
    isolateArgs: {},
  });

  const run = async (s: SpawnSpec) => {
    const worker = await isolate.spawn(s);
    const lines: Array<[OutputStream, string]> = [];
    worker.onOutput((stream, line) => lines.push([stream, line]));
    return { worker, lines };
  };

  /** The worker's cgroup directory in each hierarchy. */
  const dirsOf = (s: SpawnSpec) => isolate.layout.bases.map((base) => join(base.dir, ...workerSegments(engineId, s.app, s.workerId)));
  const dirOf = (s: SpawnSpec, controller: string) => {
    const base = isolate.layout.bases.find((b) => b.controller === controller || b.controller === 'unified')!;
    return join(base.dir, ...workerSegments(engineId, s.app, s.workerId));
  };

  it('detects the hierarchy present on this host', () => {
    const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
    expect(isolate.layout.version).toBe(v2 ? 2 : 1);
    expect([...isolate.layout.available].sort()).toEqual(['cpu', 'memory', 'pids']);
  });

  it('the worker is in its cgroups from its first instruction, and they are removed after exit', async () => {
    const s = spec('/bin/cat', ['/proc/self/cgroup'], { memoryBytes: 64 * 1024 * 1024, pids: 16 });
    const { worker, lines } = await run(s);
    for (const dir of dirsOf(s)) expect(existsSync(dir)).toBe(true);
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    const suffix = `/cocaine/${engineId}/limits-app/${s.workerId}`;
    const membership = lines.map(([, line]) => line);
    if (isolate.layout.version === 1) {
      for (const controller of ['memory', 'cpu', 'pids']) {
        expect(membership.find((line) => line.split(':')[1]!.split(',').includes(controller))?.endsWith(suffix), controller).toBe(true);
      }
    } else {
      expect(membership).toContain(`0::${suffix}`);
    }
    for (const dir of dirsOf(s)) expect(existsSync(dir)).toBe(false);
  });

  it('a memory bomb is killed at the memory limit and the reason says so', async () => {
    const s = spec(PYTHON, ['-c', 'a = []\nwhile True: a.append(b"x" * (1 << 20))'], { memoryBytes: 64 * 1024 * 1024 });
    const { worker } = await run(s);
    const exit = await worker.exited;
    expect(exit).toEqual({ code: null, signal: 'SIGKILL', reason: 'out of memory (limit 64 MiB)' });
    for (const dir of dirsOf(s)) expect(existsSync(dir)).toBe(false);
  });

  it('a fork bomb stops at the pids limit; the reason names it and nothing survives', async () => {
    const s = spec('/bin/sh', ['-c', 'b() { b | b & }; b; while :; do sleep 0.1 2>/dev/null; done'], { pids: 32 });
    const { worker } = await run(s);
    const pidsDir = dirOf(s, 'pids');
    let events = '';
    const deadline = Date.now() + 5000;
    while (!/^max [1-9]/m.test(events) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      events = readFileSync(join(pidsDir, 'pids.events'), 'utf8');
    }
    expect(events).toMatch(/^max [1-9]/m);
    expect(Number(readFileSync(join(pidsDir, 'pids.current'), 'utf8'))).toBeLessThanOrEqual(32);
    const members = cgroupPids(pidsDir);
    worker.signal('SIGKILL');
    const exit = await worker.exited;
    expect(exit.signal).toBe('SIGKILL');
    expect(exit.reason).toMatch(/pids limit 32/);
    for (const pid of members) expect(existsSync(`/proc/${pid}/stat`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z')).toBe(false);
    // The host still forks.
    const echo = spawn('/bin/echo', ['fine'], { stdio: 'pipe' });
    expect(await new Promise((resolve) => echo.once('exit', resolve))).toBe(0);
  });

  it('a CPU hog with cpus 0.2 gets at most about a fifth of a core, and the kernel says it throttled it', async () => {
    // Only upper bounds and the throttle counter: other test files may load the 2 cores meanwhile.
    const s = spec(PYTHON, ['-c', 'while True: pass'], { cpus: 0.2 });
    const { worker } = await run(s);
    const started = Date.now();
    const cpuBefore = cpuSeconds(worker);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const used = cpuSeconds(worker) - cpuBefore;
    const wall = (Date.now() - started) / 1000;
    const cpuStat = readFileSync(join(dirOf(s, 'cpu'), 'cpu.stat'), 'utf8');
    worker.signal('SIGKILL');
    await worker.exited;
    expect(used / wall).toBeLessThan(0.3);
    expect(Number(/^nr_throttled (\d+)$/m.exec(cpuStat)?.[1])).toBeGreaterThan(5);
  });

  it('writes every limit into the cgroup files', async () => {
    const s = spec('/bin/sleep', ['30'], { memoryBytes: 64 * 1024 * 1024, cpus: 0.5, cpuWeight: 200, pids: 40 });
    const { worker } = await run(s);
    const read = (controller: string, file: string) => readFileSync(join(dirOf(s, controller), file), 'utf8').trim();
    if (isolate.layout.version === 1) {
      expect(read('memory', 'memory.limit_in_bytes')).toBe(String(64 * 1024 * 1024));
      expect(read('cpu', 'cpu.cfs_quota_us')).toBe('50000');
      expect(read('cpu', 'cpu.cfs_period_us')).toBe('100000');
      expect(read('cpu', 'cpu.shares')).toBe('2048');
    } else {
      expect(read('memory', 'memory.max')).toBe(String(64 * 1024 * 1024));
      expect(read('cpu', 'cpu.max')).toBe('50000 100000');
      expect(read('cpu', 'cpu.weight')).toBe('200');
    }
    expect(read('pids', 'pids.max')).toBe('40');
    worker.signal('SIGTERM');
    expect(await worker.exited).toEqual({ code: null, signal: 'SIGTERM' });
  });

  it('cleanupOrphans kills what is left in a dead engine cgroup and removes it, and leaves other engines alone', async () => {
    const deadEngine = `dead-${randomUUID().slice(0, 8)}`;
    const otherEngine = `other-${randomUUID().slice(0, 8)}`;
    const leftover = (engine: string) => {
      const dirs = isolate.layout.bases.map((base) => join(base.dir, engine, 'app', 'w-left'));
      for (const dir of dirs) mkdirSync(dir, { recursive: true });
      // A process that escaped its group (setsid) but is still in the cgroup.
      const child = spawn('/bin/sleep', ['300'], { detached: true, stdio: 'ignore' });
      for (const dir of dirs) writeFileSync(join(dir, 'cgroup.procs'), String(child.pid));
      child.unref();
      return { dirs, pid: child.pid! };
    };
    const dead = leftover(deadEngine);
    const other = leftover(otherEngine);
    try {
      const restarted = new CgroupIsolate({ runDir, engineId: deadEngine });
      await restarted.cleanupOrphans(deadEngine);
      for (const dir of dead.dirs) expect(existsSync(dir)).toBe(false);
      await expectGone(dead.pid);
      for (const dir of other.dirs) expect(existsSync(dir)).toBe(true);
      expect(existsSync(`/proc/${other.pid}`)).toBe(true);
    } finally {
      await new CgroupIsolate({ runDir, engineId: otherEngine }).cleanupOrphans(otherEngine);
    }
    for (const dir of other.dirs) expect(existsSync(dir)).toBe(false);
    await expectGone(other.pid);
  });

  it('refuses a missing command before creating any cgroup', async () => {
    const s = spec('no-such-command-here', [], { pids: 8 });
    await expect(isolate.spawn(s)).rejects.toMatchObject({ code: 'spawn_failed', message: expect.stringContaining("'no-such-command-here'") });
    for (const dir of dirsOf(s)) expect(existsSync(dir)).toBe(false);
  });
});

/** utime + stime of a running process, in seconds (clock ticks are 1/100 s on Linux). */
function cpuSeconds(worker: WorkerProcess): number {
  const stat = readFileSync(`/proc/${worker.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function expectGone(pid: number): Promise<void> {
  const deadline = Date.now() + 3000;
  for (;;) {
    let state: string | undefined;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    } catch {
      state = undefined;
    }
    if (state === undefined || state === 'Z') return;
    if (Date.now() > deadline) throw new Error(`process ${pid} still runs`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
