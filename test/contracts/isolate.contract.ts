/**
 * What every Isolate must do (engine/isolate/types.ts). A backend's test is one call:
 *
 *   describeIsolateContract('process', async () => {
 *     const runDir = mkdtempSync(...);
 *     const make = () => new ProcessIsolate({ runDir, engineId: 'e1' });
 *     return { isolate: make(), engineId: 'e1', reopen: async () => make(), cleanup: async () => rmSync(runDir, ...) };
 *   });
 *
 * Fixtures are /bin/sh scripts (and `sleep`), so the suite also runs in any image that has sh.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ExitInfo, Isolate, OutputStream, SpawnSpec, WorkerProcess } from '../../engine/isolate/types.js';

export interface IsolateFixture {
  isolate: Isolate;
  /** The engine id the isolate was created with. */
  engineId?: string;
  /** A new instance of the same isolate with the same run directory and engine id: an engine restarted after a crash. */
  reopen(): Promise<Isolate>;
  /** Isolate-specific spawn arguments (e.g. the docker image). */
  isolateArgs?: Record<string, unknown>;
  /** Whether a process (by the pid the worker printed, as the worker sees it) still runs; default: a host pid check. */
  processExists?(worker: WorkerProcess, pid: number): Promise<boolean>;
  cleanup(): Promise<void>;
}

const SCRIPTS: Record<string, string> = {
  'show-env.sh': 'pwd\nexport -p\n',
  'output.sh': [
    'echo out1',
    'echo err1 >&2',
    'echo out2',
    'i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done',
    'echo err2 >&2',
    "printf 'last without newline'",
    'exit 7',
  ].join('\n'),
  'self-kill.sh': 'echo before\nkill -TERM $$\nsleep 5\n',
  // A worker that starts a grandchild in its own group and reports both pids.
  'family.sh': 'sleep 300 &\necho "grandchild $!"\necho "worker $$"\nwait\n',
};

export function describeIsolateContract(name: string, factory: () => Promise<IsolateFixture>): void {
  describe(`Isolate contract: ${name}`, () => {
    let fixture: IsolateFixture;
    let appDir: string;
    let socketDir: string;
    let pluginDir: string;
    let spawned: WorkerProcess[];

    beforeAll(() => {
      appDir = mkdtempSync(join(tmpdir(), 'isolate-contract-app-'));
      socketDir = mkdtempSync(join(tmpdir(), 'isolate-contract-sock-'));
      pluginDir = mkdtempSync(join(tmpdir(), 'isolate-contract-plugin-'));
      for (const [file, text] of Object.entries(SCRIPTS)) {
        writeFileSync(join(appDir, file), text);
        chmodSync(join(appDir, file), 0o755);
      }
    });

    afterAll(() => {
      for (const dir of [appDir, socketDir, pluginDir]) rmSync(dir, { recursive: true, force: true });
    });

    beforeEach(async () => {
      fixture = await factory();
      spawned = [];
    });

    afterEach(async () => {
      for (const worker of spawned) worker.signal('SIGKILL');
      await Promise.all(spawned.map((worker) => worker.exited));
      await fixture.isolate.close();
      await fixture.cleanup();
    });

    const specFor = (isolate: Isolate, script: string, env: Record<string, string> = {}): SpawnSpec => {
      const workerId = randomUUID();
      isolate.workerPaths({ appDir, socketDir, pluginDir, workerId });
      return {
        workerId,
        app: 'contract-app',
        command: '/bin/sh',
        args: [script],
        env: { PATH: '/usr/local/bin:/usr/bin:/bin', ...env },
        appDir,
        socketDir,
        pluginDir,
        limits: {},
        isolateArgs: fixture.isolateArgs ?? {},
      };
    };

    const start = async (isolate: Isolate, script: string, env?: Record<string, string>) => {
      const worker = await isolate.spawn(specFor(isolate, script, env));
      spawned.push(worker);
      const lines: Array<[OutputStream, string]> = [];
      worker.onOutput((stream, line) => lines.push([stream, line]));
      return { worker, lines };
    };

    const exists = (worker: WorkerProcess, pid: number): Promise<boolean> => {
      if (fixture.processExists) return fixture.processExists(worker, pid);
      return Promise.resolve(hostProcessRuns(pid));
    };

    const waitForLine = async (lines: Array<[OutputStream, string]>, prefix: string): Promise<string> => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const found = lines.find(([, line]) => line.startsWith(prefix));
        if (found) return found[1];
        if (Date.now() > deadline) throw new Error(`no output line starting with '${prefix}'; got ${JSON.stringify(lines)}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };

    it('maps host paths to worker paths, the endpoint inside the socket directory', () => {
      const paths = fixture.isolate.workerPaths({ appDir, socketDir, pluginDir, workerId: 'w-1' });
      expect(paths.endpoint.endsWith('/w-1.sock')).toBe(true);
      expect(typeof paths.appDir).toBe('string');
      expect(typeof paths.pluginDir).toBe('string');
    });

    it('runs the command in the app directory with exactly the spec environment', async () => {
      process.env.ISOLATE_CONTRACT_LEAK = 'must-not-appear';
      try {
        const { worker, lines } = await start(fixture.isolate, './show-env.sh', {
          APP_SETTING: 'a value with spaces',
          COCAINE_APP: 'contract-app',
          // The engine always sets HOME; a container runtime would otherwise invent one from the image.
          HOME: '/tmp',
        });
        const exit = await worker.exited;
        expect(exit).toMatchObject({ code: 0, signal: null });
        const stdout = lines.filter(([stream]) => stream === 'stdout').map(([, line]) => line);
        const expectedCwd = fixture.isolate.workerPaths({ appDir, socketDir, pluginDir, workerId: 'x' }).appDir;
        expect(stdout[0]).toBe(expectedCwd);
        const exported = new Map(
          stdout
            .slice(1)
            .map((line) => /^export ([A-Za-z_][A-Za-z0-9_]*)(?:='(.*)')?$/.exec(line))
            .filter((match): match is RegExpExecArray => match !== null)
            .map((match) => [match[1], match[2] ?? ''] as const),
        );
        expect(exported.get('APP_SETTING')).toBe('a value with spaces');
        expect(exported.get('COCAINE_APP')).toBe('contract-app');
        expect(exported.get('HOME')).toBe('/tmp');
        expect(exported.has('ISOLATE_CONTRACT_LEAK')).toBe(false);
        // Only the spec's variables, plus what the shell itself sets.
        const allowed = new Set(['PATH', 'HOME', 'APP_SETTING', 'COCAINE_APP', 'PWD', 'OLDPWD', 'SHLVL', '_']);
        expect([...exported.keys()].filter((key) => !allowed.has(key))).toEqual([]);
      } finally {
        delete process.env.ISOLATE_CONTRACT_LEAK;
      }
    });

    it('delivers stdout and stderr lines in order, the last one without newline, and the exit code', async () => {
      const { worker, lines } = await start(fixture.isolate, './output.sh');
      const exit: ExitInfo = await worker.exited;
      expect(exit.code).toBe(7);
      expect(exit.signal).toBeNull();
      const stdout = lines.filter(([stream]) => stream === 'stdout').map(([, line]) => line);
      const stderr = lines.filter(([stream]) => stream === 'stderr').map(([, line]) => line);
      expect(stdout).toEqual(['out1', 'out2', ...Array.from({ length: 2000 }, (_, i) => `line ${i}`), 'last without newline']);
      expect(stderr).toEqual(['err1', 'err2']);
    });

    it('reports death by a signal', async () => {
      const { worker, lines } = await start(fixture.isolate, './self-kill.sh');
      const exit = await worker.exited;
      expect(exit.code).toBeNull();
      expect(exit.signal).toBe('SIGTERM');
      expect(lines).toContainEqual(['stdout', 'before']);
    });

    it("signal('SIGKILL') kills the worker and what it started", async () => {
      const { worker, lines } = await start(fixture.isolate, './family.sh');
      const grandchild = Number((await waitForLine(lines, 'grandchild ')).split(' ')[1]);
      expect(await exists(worker, grandchild)).toBe(true);
      worker.signal('SIGKILL');
      const exit = await worker.exited;
      expect(exit.signal).toBe('SIGKILL');
      await expectGone(() => exists(worker, grandchild));
    });

    it('signal() after the worker exited is harmless', async () => {
      const { worker } = await start(fixture.isolate, './show-env.sh');
      await worker.exited;
      expect(() => worker.signal('SIGTERM')).not.toThrow();
      expect(() => worker.signal('SIGKILL')).not.toThrow();
    });

    it('rejects a spawn of a missing command with spawn_failed', async () => {
      const spec = { ...specFor(fixture.isolate, 'x'), command: '/nonexistent/cocaine-no-such-command' };
      await expect(fixture.isolate.spawn(spec)).rejects.toMatchObject({ code: 'spawn_failed', message: expect.stringContaining('/nonexistent/cocaine-no-such-command') });
    });

    it('cleanupOrphans on a new instance kills the workers a dead engine left, and only its own', async () => {
      const { worker, lines } = await start(fixture.isolate, './family.sh');
      const grandchild = Number((await waitForLine(lines, 'grandchild ')).split(' ')[1]);
      const restarted = await fixture.reopen();
      try {
        await restarted.cleanupOrphans(`not-${fixture.engineId ?? 'this'}-engine`);
        if (fixture.engineId !== undefined) {
          const stillRunning = await Promise.race([worker.exited.then(() => false), new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 300))]);
          expect(stillRunning).toBe(true);
        }
        await restarted.cleanupOrphans(fixture.engineId);
        const exit = await worker.exited;
        expect(exit.signal).toBe('SIGKILL');
        await expectGone(() => exists(worker, grandchild));
        // The records are gone too: a second cleanup finds nothing (and does not fail).
        await restarted.cleanupOrphans(fixture.engineId);
      } finally {
        await restarted.close();
      }
    });
  });
}

/** A host pid that runs (a zombie waiting for its reaper does not count). */
function hostProcessRuns(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function expectGone(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (await check()) {
    if (Date.now() > deadline) throw new Error('the process is still running');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
