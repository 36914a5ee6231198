/**
 * The conformance kit: one suite every language plugin passes, driven through a real engine
 * (gRPC and the CLI) with the plugin's conformance app (docs/plugin-authors.md lists its events).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliJson, processesWithEnv, startEngine, tempDir, waitFor, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';

export interface ConformanceOptions {
  /** Plugin name as manifests name it. */
  plugin: string;
  /** Directory of the conformance app (with its manifest.yaml). */
  appDir: string;
  /** Third-party plugin directory for the engine, if the plugin is not built in. */
  pluginsDir?: string;
  /** Isolate type for the app's profile (default process). */
  isolate?: { type: string; args?: Record<string, unknown> };
  /** Extra engine arguments (e.g. the docker socket). */
  engineArgs?: string[];
  /** Whether the runtime runs sessions in parallel (declared concurrency 0) or one at a time (1). */
  sessions: 'parallel' | 'serial';
  /** Prepares the app dir (e.g. compiles a shared object). */
  prepare?: () => Promise<void> | void;
  /** Timeout multiplier for slow isolates (containers). */
  slow?: number;
}

export function describeConformance(options: ConformanceOptions): void {
  const app = `conformance-${options.plugin}`;
  const slow = options.slow ?? 1;

  describe(`conformance: ${options.plugin} plugin${options.isolate ? ` (${options.isolate.type} isolate)` : ''}`, () => {
    let engine: RunningEngine;
    let rpc: Rpc;
    const target = (event: string) => `${app}@${event}`;

    beforeAll(async () => {
      await options.prepare?.();
      engine = await startEngine({ args: [...(options.pluginsDir ? ['--plugins-dir', options.pluginsDir] : []), ...(options.engineArgs ?? [])] });
      rpc = connectRpc(engine.address);
      const profileFile = join(tempDir('profile'), 'conformance.json');
      writeFileSync(
        profileFile,
        JSON.stringify({
          'pool-limit': 1,
          concurrency: 10,
          'queue-limit': 100,
          'heartbeat-timeout': 1.5 * slow,
          'startup-timeout': 15 * slow,
          'termination-timeout': 2,
          'crash-limit': 1000,
          isolate: options.isolate ?? { type: 'process', args: {} },
        }),
      );
      await cliJson(engine, ['profile', 'upload', 'conformance', profileFile]);
      await cliJson(engine, ['app', 'upload', options.appDir, '--name', app, '--profile', 'conformance']);
    }, 240_000);

    afterAll(async () => {
      rpc?.close();
      await engine?.stop();
    });

    it('echoes binary data with all 256 byte values', async () => {
      const data = Buffer.alloc(256 * 4);
      for (let i = 0; i < data.length; i++) data[i] = i % 256;
      const result = await rpc.call(target('echo'), data);
      expect(result.error).toBeUndefined();
      expect(result.body.equals(data)).toBe(true);
    });

    it('streams 1,000 chunks in order', async () => {
      const result = await rpc.call(target('stream'), '1000');
      expect(result.error).toBeUndefined();
      expect(result.chunks.length).toBe(1000);
      expect(result.chunks.map((chunk) => chunk.toString())).toEqual(Array.from({ length: 1000 }, (_, i) => String(i)));
    });

    it('reads a streamed request body', async () => {
      const parts = ['hello ', 'streamed ', 'world'].map((part) => Buffer.from(part));
      const result = await rpc.callStreaming(target('upper'), parts);
      expect(result.error).toBeUndefined();
      expect(result.body.toString()).toBe('HELLO STREAMED WORLD');
    });

    it('carries a 16 MiB payload both ways', async () => {
      const size = 16 * 1024 * 1024;
      const big = await rpc.call(target('big'), String(size), { timeoutMs: 60_000 });
      expect(big.error).toBeUndefined();
      expect(big.body.length).toBe(size);
      for (const i of [0, 1, 250, 251, 1_000_003, size - 1]) expect(big.body[i]).toBe(i % 251);
      const echoed = await rpc.call(target('echo'), big.body, { timeoutMs: 60_000 });
      expect(echoed.error).toBeUndefined();
      expect(echoed.body.equals(big.body)).toBe(true);
    });

    it("delivers a handler's error message to the caller", async () => {
      const result = await rpc.call(target('fail'), 'xyz');
      expect(result.error?.status).toBe(2); // UNKNOWN
      expect(result.error?.message).toContain('boom: xyz');
    });

    it('answers NOT_FOUND for an unknown event', async () => {
      const result = await rpc.call(target('no-such-event'), '');
      expect(result.error?.status).toBe(5); // NOT_FOUND
    });

    it('keeps module state across calls', async () => {
      const first = Number((await rpc.call(target('counter'))).body.toString());
      const second = Number((await rpc.call(target('counter'))).body.toString());
      const third = Number((await rpc.call(target('counter'))).body.toString());
      expect(first).toBeGreaterThanOrEqual(1);
      expect([second, third]).toEqual([first + 1, first + 2]);
    });

    it(`runs sessions ${options.sessions === 'parallel' ? 'concurrently on one worker' : 'one at a time, as declared'}`, async () => {
      await rpc.call(target('echo'), 'warm');
      const started = Date.now();
      const results = await Promise.all(Array.from({ length: 5 }, () => rpc.call(target('concurrent'))));
      const elapsed = Date.now() - started;
      expect(results.every((result) => result.body.toString() === 'done')).toBe(true);
      if (options.sessions === 'parallel') expect(elapsed).toBeLessThan(800 * slow);
      else expect(elapsed).toBeGreaterThanOrEqual(950);
    });

    it('fails a call whose worker crashes with the exit reason, keeps a crashlog, and recovers', async () => {
      const result = await rpc.call(target('crash'));
      expect(result.error?.status).toBe(14); // UNAVAILABLE
      expect(result.error?.message).toMatch(/code 3/);
      expect(result.error?.message).toContain('about to crash');
      const crashlogs = await cliJson<Array<{ id: string }>>(engine, ['crashlog', 'list', app]);
      expect(crashlogs.length).toBeGreaterThan(0);
      const view = await cli(engine, ['crashlog', 'view', app, crashlogs[0].id]);
      expect(view.stdout).toContain('about to crash');
      const after = await rpc.call(target('echo'), 'alive');
      expect(after.body.toString()).toBe('alive');
    });

    it('kills a hung worker when its heartbeats stop', async () => {
      const started = Date.now();
      const result = await rpc.call(target('hang'));
      expect(result.error?.status).toBe(14);
      expect(result.error?.message).toMatch(/heartbeat/);
      expect(Date.now() - started).toBeLessThan(6_000 * slow);
      expect((await rpc.call(target('echo'), 'alive')).body.toString()).toBe('alive');
    });

    it('fails a call past its deadline with DEADLINE_EXCEEDED and keeps serving', async () => {
      const started = Date.now();
      const result = await rpc.call(target('sleep'), '5000', { timeoutMs: 300 });
      expect(result.error?.status).toBe(4); // DEADLINE_EXCEEDED
      expect(Date.now() - started).toBeLessThan(2_500);
      expect((await rpc.call(target('echo'), 'alive')).body.toString()).toBe('alive');
    });

    it("captures the worker's stdout and stderr into the app's logs", async () => {
      expect((await rpc.call(target('log'))).body.toString()).toBe('ok');
      await waitFor('both lines in the app logs', async () => {
        const logs = await cli(engine, ['app', 'logs', app, '--lines', '200']);
        return logs.stdout.includes('hello stdout') && logs.stdout.includes('hello stderr');
      });
    });

    it('terminates gracefully on stop: no crashlog, no process left', async () => {
      await rpc.call(target('echo'), 'warm');
      const before = (await cliJson<unknown[]>(engine, ['crashlog', 'list', app])).length;
      await cliJson(engine, ['app', 'stop', app]);
      await waitFor('the worker processes to exit', () => processesWithEnv(`COCAINE_APP=${app}\0`).length === 0, 10_000);
      expect((await cliJson<unknown[]>(engine, ['crashlog', 'list', app])).length).toBe(before);
      await cliJson(engine, ['app', 'start', app, '--profile', 'conformance']);
    });
  });
}
