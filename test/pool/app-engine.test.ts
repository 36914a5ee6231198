import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseManifest, resolveProfile } from '../../manifests/validate.js';
import type { Profile } from '../../manifests/types.js';
import nodePlugin from '../../plugins/node/index.js';
import { AppEngine } from '../../engine/pool/app-engine.js';
import { AppLogs } from '../../engine/pool/app-logs.js';
import { ProcessIsolate } from '../../engine/isolate/process.js';
import type { CrashlogEntry } from '../../engine/storage/types.js';
import type { EngineError } from '../../engine/errors/index.js';
import { EXAMPLES, ROOT, isAlive, tempDir, waitFor } from '../helpers/engine.js';

const runDir = tempDir('pool');
const isolate = new ProcessIsolate({ runDir, engineId: 'pool-test' });
const engines: AppEngine[] = [];

interface Made {
  engine: AppEngine;
  logs: AppLogs;
  crashlogs: CrashlogEntry[];
}

function makeEngine(appDir: string, profile: Partial<Profile> = {}): Made {
  const manifest = parseManifest(readFileSync(join(appDir, 'manifest.yaml')), 'manifest.yaml');
  const logs = new AppLogs();
  const crashlogs: CrashlogEntry[] = [];
  const engine = new AppEngine({
    app: manifest.name,
    manifest,
    profile: resolveProfile(profile, 'test profile'),
    profileName: 'test',
    plugin: nodePlugin,
    isolate,
    limits: {},
    socketDir: join(runDir, 's'),
    logs,
    prepareAppDir: async () => appDir,
    saveCrashlog: async (entry) => {
      crashlogs.push(entry);
    },
  });
  engines.push(engine);
  return { engine, logs, crashlogs };
}

interface Outcome {
  body: Buffer;
  error?: EngineError;
  ms: number;
}

function call(engine: AppEngine, event: string, body = '', timeoutMs = 0): Promise<Outcome> {
  const started = Date.now();
  const invocation = engine.invoke({ app: engine.name, event, headers: {}, deadline: timeoutMs ? Date.now() + timeoutMs : 0 });
  invocation.write(Buffer.from(body));
  invocation.end();
  const chunks: Buffer[] = [];
  return new Promise((resolve) =>
    invocation.listen({
      onChunk: (chunk) => chunks.push(chunk),
      onEnd: () => resolve({ body: Buffer.concat(chunks), ms: Date.now() - started }),
      onError: (error) => resolve({ body: Buffer.concat(chunks), error: error as EngineError, ms: Date.now() - started }),
    }),
  );
}

const echoDir = join(EXAMPLES, 'node-echo');
const slowDir = join(EXAMPLES, 'node-slow');

afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.stop('test done', 0)));
});

afterAll(async () => {
  await isolate.close();
});

describe('AppEngine (real node workers through the process isolate)', () => {
  it('spawns nothing until the first call, then serves it', async () => {
    const { engine } = makeEngine(echoDir);
    expect(engine.info().poolSize).toBe(0);
    const result = await call(engine, 'echo', 'hello');
    expect(result.error).toBeUndefined();
    expect(result.body.toString()).toBe('hello');
    expect(engine.info().poolSize).toBe(1);
    expect(engine.info().counters.spawned).toBe(1);
  });

  it('grows with queue depth up to pool-limit and never beyond', async () => {
    const { engine } = makeEngine(slowDir, { 'pool-limit': 3, concurrency: 1, 'grow-threshold': 1, 'queue-limit': 50 });
    let maxPool = 0;
    const sampler = setInterval(() => (maxPool = Math.max(maxPool, engine.info().poolSize)), 5);
    const results = await Promise.all(Array.from({ length: 9 }, () => call(engine, 'sleep', '300')));
    clearInterval(sampler);
    expect(results.every((result) => !result.error)).toBe(true);
    expect(maxPool).toBe(3);
    expect(engine.info().counters.spawned).toBe(3);
  });

  it('runs up to `concurrency` sessions on one worker at once', async () => {
    const { engine } = makeEngine(slowDir, { 'pool-limit': 1, concurrency: 10 });
    await call(engine, 'sleep', '1'); // warm
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 10 }, () => call(engine, 'sleep', '300')));
    expect(results.every((result) => !result.error)).toBe(true);
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(engine.info().poolSize).toBe(1);
  });

  it('answers queue_full at once when the queue is full, instead of hanging', async () => {
    const { engine } = makeEngine(slowDir, { 'pool-limit': 1, concurrency: 1, 'queue-limit': 2 });
    await call(engine, 'pid');
    const running = [call(engine, 'sleep', '500'), call(engine, 'sleep', '500'), call(engine, 'sleep', '500')];
    await new Promise((resolve) => setTimeout(resolve, 20));
    // One on the worker, two waiting: the next is refused.
    const refused = await call(engine, 'sleep', '1');
    expect(refused.error?.code).toBe('queue_full');
    expect(refused.ms).toBeLessThan(100);
    expect(refused.error?.message).toMatch(/queue is full/);
    const results = await Promise.all(running);
    expect(results.filter((result) => result.error).length).toBe(0);
    expect(engine.info().counters.rejected).toBe(1);
  });

  it('fails a call past its deadline and cancels it in the worker, which keeps serving', async () => {
    const { engine, logs } = makeEngine(slowDir, { 'pool-limit': 1 });
    const before = await call(engine, 'pid');
    const late = await call(engine, 'sleep', '5000', 300);
    expect(late.error?.code).toBe('deadline_exceeded');
    expect(late.ms).toBeGreaterThanOrEqual(290);
    expect(late.ms).toBeLessThan(1_500);
    expect(engine.info().sessions).toBe(0);
    const after = await call(engine, 'pid');
    expect(after.body.toString()).toBe(before.body.toString());
    expect(logs.recent(100).some((line) => /crash/i.test(line.line))).toBe(false);
  });

  it('applies the per-event timeout declared in the manifest', async () => {
    const { engine } = makeEngine(slowDir, { 'request-timeout': 0.2 });
    const late = await call(engine, 'sleep', '3000');
    expect(late.error?.code).toBe('deadline_exceeded');
  });

  it('terminates idle workers after idle-timeout (scales to zero)', async () => {
    const { engine } = makeEngine(echoDir, { 'idle-timeout': 0.3 });
    expect((await call(engine, 'echo', 'first')).body.toString()).toBe('first');
    expect(engine.info().poolSize).toBe(1);
    await waitFor('the pool to scale to zero', () => engine.info().poolSize === 0, 5_000);
    const again = await call(engine, 'echo', 'back');
    expect(again.body.toString()).toBe('back');
  });

  it('fails the calls of a crashed worker with the exit reason, saves a crashlog, and respawns', async () => {
    const { engine, crashlogs } = makeEngine(slowDir);
    const crashed = await call(engine, 'crash');
    expect(crashed.error?.code).toBe('worker_crashed');
    expect(crashed.error?.message).toMatch(/exited with code 3/);
    expect(crashed.error?.message).toMatch(/crashing on purpose/);
    await waitFor('the crashlog', () => crashlogs.length === 1);
    expect(crashlogs[0].lines.join('\n')).toMatch(/crashing on purpose/);
    expect(crashlogs[0].reason).toMatch(/code 3/);
    const next = await call(engine, 'pid');
    expect(next.error).toBeUndefined();
    expect(engine.info().counters.crashes).toBe(1);
  });

  it('fails in-flight calls with the signal when the worker is killed from outside', async () => {
    const { engine } = makeEngine(slowDir, { concurrency: 5 });
    const pid = Number((await call(engine, 'pid')).body.toString());
    const inFlight = [call(engine, 'sleep', '5000'), call(engine, 'sleep', '5000')];
    await new Promise((resolve) => setTimeout(resolve, 100));
    process.kill(pid, 'SIGKILL');
    for (const result of await Promise.all(inFlight)) {
      expect(result.error?.code).toBe('worker_crashed');
      expect(result.error?.message).toMatch(/SIGKILL/);
    }
  });

  it('kills a hung worker (busy loop) after heartbeat-timeout', async () => {
    const { engine, crashlogs } = makeEngine(slowDir, { 'heartbeat-timeout': 0.6 });
    const pid = Number((await call(engine, 'pid')).body.toString());
    const hung = await call(engine, 'hang');
    expect(hung.error?.code).toBe('heartbeat_timeout');
    expect(hung.error?.message).toMatch(/heartbeat/);
    expect(hung.ms).toBeLessThan(3_000);
    await waitFor('the hung worker to be reaped', () => !isAlive(pid));
    await waitFor('the crashlog', () => crashlogs.length === 1);
  });

  it('kills a stopped worker (SIGSTOP) after heartbeat-timeout', async () => {
    const { engine } = makeEngine(slowDir, { 'heartbeat-timeout': 0.6 });
    const stopped = await call(engine, 'stop');
    expect(stopped.error?.code).toBe('heartbeat_timeout');
  });

  it('reports why a worker cannot start, then marks a crash-looping app broken', async () => {
    const { engine, crashlogs } = makeEngine(join(ROOT, 'test/fixtures/node-broken'), { 'crash-limit': 3 });
    const first = await call(engine, 'anything');
    expect(first.error?.code).toBe('spawn_failed');
    expect(first.error?.message).toMatch(/missing configuration/);
    await call(engine, 'anything');
    const third = await call(engine, 'anything');
    expect(third.error?.code).toBe('app_broken');
    expect(engine.info().state).toBe('broken');
    const after = await call(engine, 'anything');
    expect(after.error?.code).toBe('app_broken');
    expect(after.ms).toBeLessThan(50);
    expect(crashlogs.length).toBe(3);
  });

  it('stop() drains calls in flight, then terminates and reaps every worker', async () => {
    const { engine } = makeEngine(slowDir, { 'pool-limit': 2, concurrency: 1, 'grow-threshold': 1 });
    const pids = (await Promise.all([call(engine, 'pid'), call(engine, 'pid')])).map((result) => Number(result.body.toString()));
    const inFlight = call(engine, 'sleep', '300');
    await new Promise((resolve) => setTimeout(resolve, 50));
    await engine.stop('test', 5_000);
    expect((await inFlight).error).toBeUndefined();
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    const refused = await call(engine, 'pid');
    expect(refused.error?.code).toBe('app_stopped');
  });
});
