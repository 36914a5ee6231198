import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcessIsolate } from '../../engine/isolate/process.js';
import type { Isolate, SpawnSpec, WorkerProcess } from '../../engine/isolate/types.js';
import { Worker } from '../../engine/worker/worker.js';
import { parseManifest, resolveProfile } from '../../manifests/validate.js';
import nodePlugin from '../../plugins/node/index.js';
import { EXAMPLES, processesWithEnv, tempDir, waitFor } from '../helpers/engine.js';

const runDir = tempDir('worker-start');
const processes = new ProcessIsolate({ runDir, engineId: 'worker-start-test' });
const slowDir = join(EXAMPLES, 'node-slow');
const manifest = parseManifest(readFileSync(join(slowDir, 'manifest.yaml')), 'manifest.yaml');

afterAll(() => processes.close());

/**
 * The real process isolate whose spawn() answers late, after the worker already runs: what the
 * Docker isolate does on a busy box (the container starts and connects before Docker's HTTP
 * answer to "start" reaches the engine).
 */
function answeringLate(delayMs: number): Isolate {
  return {
    type: 'process',
    workerPaths: (spec) => processes.workerPaths(spec),
    async spawn(spec: SpawnSpec): Promise<WorkerProcess> {
      const worker = await processes.spawn(spec);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      return worker;
    },
    cleanupOrphans: (engineId) => processes.cleanupOrphans(engineId),
    close: () => processes.close(),
  };
}

/** The real process isolate, slow before it starts the process (a slow `docker create`), or slow to start it. */
function slowIsolate(options: { beforeStartMs?: number; startingMs?: number; spawned?: WorkerProcess[] }): Isolate {
  return {
    type: 'process',
    workerPaths: (spec) => processes.workerPaths(spec),
    async spawn(spec: SpawnSpec): Promise<WorkerProcess> {
      await new Promise((resolve) => setTimeout(resolve, options.beforeStartMs ?? 0));
      if (options.startingMs) {
        spec.onStart?.();
        await new Promise((resolve) => setTimeout(resolve, options.startingMs));
      }
      const worker = await processes.spawn(spec);
      options.spawned?.push(worker);
      return worker;
    },
    cleanupOrphans: (engineId) => processes.cleanupOrphans(engineId),
    close: () => processes.close(),
  };
}

function start(isolate: Isolate, profile: Record<string, unknown>, workerId?: string) {
  return Worker.start({
    workerId,
    app: manifest.name,
    plugin: nodePlugin,
    isolate,
    manifest,
    profile: resolveProfile(profile, 'test profile'),
    appDir: slowDir,
    socketDir: join(runDir, 's'),
    limits: {},
    isolateArgs: {},
  });
}

describe('Worker.start', () => {
  it('keeps a connection made before spawn() returned: the worker handshakes and is not left to disown', async () => {
    // heartbeat-timeout 1 s: a worker that hears nothing exits after COCAINE_DISOWN_MS = 2 s.
    const worker = await start(answeringLate(3_000), { 'heartbeat-timeout': 1, 'startup-timeout': 20 });
    expect(worker.isActive).toBe(true);
    // Still alive well past its disown time: it hears the engine (handshake acknowledged, heartbeats answered).
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(worker.isDead).toBe(false);
    await worker.terminate('test done');
  }, 30_000);

  it('counts startup-timeout from the spawn, and says so once', async () => {
    // A process that never connects: however fast the machine, it cannot handshake in time.
    const silent: Isolate = { ...answeringLate(0), spawn: (spec) => processes.spawn({ ...spec, command: 'sleep', args: ['30'] }) };
    const worker = start(silent, { 'startup-timeout': 0.05 });
    const error = await worker.then(
      () => undefined,
      (caught: Error & { code?: string }) => caught,
    );
    expect(error?.code).toBe('startup_timeout');
    expect(error?.message).toMatch(/^worker [0-9a-f]{8} of app "node-slow" did not handshake within the startup-timeout of 0\.05s \(killed by SIGKILL\)/);
    expect(error?.message).not.toMatch(/before its handshake/);
  });

  it('does not count a slow preparation (docker create) into startup-timeout', async () => {
    const worker = await start(slowIsolate({ beforeStartMs: 2_500 }), { 'startup-timeout': 2 });
    expect(worker.isActive).toBe(true);
    await worker.terminate('test done');
  });

  it('counts a start that does not return into startup-timeout, and kills the process that comes late', async () => {
    const workerId = randomUUID();
    const started = Date.now();
    const spawned: WorkerProcess[] = [];
    const error = await start(slowIsolate({ startingMs: 4_000, spawned }), { 'startup-timeout': 0.5 }, workerId).then(
      () => undefined,
      (caught: Error & { code?: string }) => caught,
    );
    expect(error?.code).toBe('startup_timeout');
    expect(error?.message).toBe(`worker ${workerId.slice(0, 8)} of app "node-slow" did not start within the startup-timeout of 0.5s (the process isolate had not started it)`);
    expect(Date.now() - started).toBeLessThan(3_500);
    const late = await waitFor('the late process to be spawned', () => spawned[0], 10_000);
    expect((await late.exited).signal).toBe('SIGKILL');
    expect(processesWithEnv(workerId)).toEqual([]);
  }, 30_000);

  it('heartbeat kills say what happened without repeating a word', async () => {
    const worker = await start(processes, { 'heartbeat-timeout': 0.5 });
    const exited = new Promise<{ reason: string }>((resolve) => worker.onExit(resolve));
    const channel = worker.open('hang', {}, 0, { onChunk() {}, onEnd() {}, onError() {} });
    channel.end();
    const { reason } = await exited;
    expect(reason).toMatch(/^worker [0-9a-f]{8} of app "node-slow" sent nothing for \d+\.\ds \(heartbeat-timeout 0\.5s\): hung \(killed by SIGKILL\)$/);
    expect(reason).not.toMatch(/worker.*worker|killed.*killed/);
    await waitFor('the worker to be dead', () => worker.isDead);
  });
});
