/**
 * Resource isolation seen by a user: a real engine, apps under the cgroup or docker isolate that
 * misbehave (memory, processes, CPU, network), while another app keeps serving.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, ROOT, cliJson, isAlive, startEngine, tempDir, waitFor, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';

export interface IsolationSetup {
  type: 'cgroup' | 'docker';
  /** Extra isolate args (e.g. the image). */
  args(): Record<string, unknown>;
  engineArgs(): string[];
  /** Leftovers of an engine with this node id (containers, cgroups); [] when clean. */
  leftovers(nodeId: string): Promise<string[]>;
  /** Whether workers can reach the network (docker: no, unless asked). */
  isolatesNetwork: boolean;
}

export function describeIsolationThroughEngine(setup: IsolationSetup): void {
  describe(`${setup.type} isolate through the engine`, () => {
    let engine: RunningEngine;
    let rpc: Rpc;
    const dataDir = tempDir(`iso-${setup.type}`);

    async function deploy(target: RunningEngine): Promise<void> {
      const profile = join(tempDir('profile'), 'limited.json');
      writeFileSync(
        profile,
        JSON.stringify({
          'pool-limit': 2,
          'crash-limit': 100,
          'heartbeat-timeout': 10,
          'startup-timeout': 20,
          isolate: { type: setup.type, args: { memory: '96M', pids: 48, cpus: 0.25, ...setup.args() } },
        }),
      );
      await cliJson(target, ['profile', 'upload', 'limited', profile]);
      await cliJson(target, ['app', 'upload', join(ROOT, 'test/fixtures/node-limits'), '--profile', 'limited']);
      await cliJson(target, ['app', 'upload', join(EXAMPLES, 'node-echo')]);
    }

    beforeAll(async () => {
      engine = await startEngine({ dataDir, args: setup.engineArgs(), keepData: true });
      rpc = connectRpc(engine.address);
      await deploy(engine);
    }, 120_000);

    afterAll(async () => {
      rpc?.close();
      await engine?.stop();
    });

    it('serves a call inside the isolate', async () => {
      const result = await rpc.call('node-limits@ping', '', { timeoutMs: 30_000 });
      expect(result.error).toBeUndefined();
      expect(result.body.toString()).toBe('pong');
    });

    it('kills a memory bomb at its limit, says so, and keeps serving other apps', async () => {
      const bomb = rpc.call('node-limits@membomb', '', { timeoutMs: 60_000 });
      const others = await Promise.all(Array.from({ length: 30 }, (_, i) => rpc.call('node-echo@echo', `still here ${i}`)));
      expect(others.every((result, i) => result.body.toString() === `still here ${i}`)).toBe(true);
      const result = await bomb;
      expect(result.error?.status).toBe(14);
      expect(result.error?.message).toMatch(/out of memory \(limit 96 MiB\)/);
      const crashlogs = await cliJson<Array<{ reason: string }>>(engine, ['crashlog', 'list', 'node-limits']);
      expect(crashlogs[0].reason).toMatch(/out of memory/);
    });

    it('stops a fork bomb at the pids limit', async () => {
      const result = await rpc.call('node-limits@forkbomb', '', { timeoutMs: 60_000 });
      expect(result.error).toBeUndefined();
      expect(result.body.toString()).toMatch(/^fork failed after \d+/);
      expect(Number(/after (\d+)/.exec(result.body.toString())?.[1])).toBeLessThan(48);
      expect((await rpc.call('node-echo@echo', 'fine')).body.toString()).toBe('fine');
    });

    it('throttles a CPU hog to its quota', async () => {
      const result = await rpc.call('node-limits@cpuhog', '1500', { timeoutMs: 60_000 });
      expect(result.error).toBeUndefined();
      const cpuMs = Number(result.body.toString());
      expect(cpuMs).toBeLessThan(1500 * 0.25 * 1.6);
    });

    it(setup.isolatesNetwork ? 'gives the worker no network' : 'leaves the network to the host', async () => {
      const port = engine.address.split(':').pop();
      const result = await rpc.call('node-limits@net', `127.0.0.1:${port}`, { timeoutMs: 30_000 });
      if (setup.isolatesNetwork) expect(result.body.toString()).toMatch(/^refused/);
      else expect(result.body.toString()).toBe('connected');
    });

    it('leaves nothing behind after the engine is SIGKILLed: the next start cleans up', async () => {
      await rpc.call('node-limits@ping', '', { timeoutMs: 30_000 });
      const nodeId = readFileSync(join(dataDir, 'node-id'), 'utf8').trim();
      expect((await setup.leftovers(nodeId)).length).toBeGreaterThan(0);
      await engine.kill();
      rpc.close();
      engine = await startEngine({ dataDir, args: setup.engineArgs(), keepData: true });
      rpc = connectRpc(engine.address);
      await waitFor('the orphans to be removed', async () => (await setup.leftovers(nodeId)).length === 0, 20_000, 250);
      expect((await rpc.call('node-limits@ping', '', { timeoutMs: 30_000 })).body.toString()).toBe('pong');
      expect(isAlive(engine.process.pid!)).toBe(true);
    });
  });
}
