/**
 * The engine checks: the conformance app driven through a real engine (gRPC and the CLI), in the
 * isolate the options name. gRPC outcomes are compared by code name (NOT_FOUND, not 5).
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { expect } from 'vitest';
import { cli, cliJson, processesWithEnv, waitFor } from '../helpers/engine.js';
import type { CallResult } from '../helpers/rpc.js';
import type { Check } from './check.js';

/** The gRPC code of a call's outcome by name: OK when it succeeded. */
export function codeOf(result: CallResult): string {
  if (!result.error) return 'OK';
  return GrpcStatus[result.error.status] ?? `status ${result.error.status}`;
}

const calls = 'engine: calls';
const failures = 'engine: failures';

export const engineChecks: Check[] = [
  {
    group: calls,
    name: 'starts in a real engine: the app uploads and its first call succeeds',
    timeoutMs: 120_000,
    async run(kit) {
      const { rpc, target } = await kit.engine();
      const result = await rpc.call(target('echo'), 'first', { timeoutMs: 60_000 * kit.slow });
      expect(codeOf(result), result.error?.message).toBe('OK');
      expect(result.body.toString()).toBe('first');
    },
  },
  {
    group: calls,
    name: 'echoes binary data with all 256 byte values',
    timeoutMs: 30_000,
    async run(kit) {
      const { rpc, target } = await kit.engine();
      const data = Buffer.alloc(256 * 4);
      for (let i = 0; i < data.length; i++) data[i] = i % 256;
      const result = await rpc.call(target('echo'), data);
      expect(codeOf(result), result.error?.message).toBe('OK');
      expect(result.body.equals(data)).toBe(true);
    },
  },
  {
    group: calls,
    name: 'streams 1,000 chunks in order',
    timeoutMs: 30_000,
    async run(kit) {
      const { rpc, target } = await kit.engine();
      const result = await rpc.call(target('stream'), '1000');
      expect(codeOf(result), result.error?.message).toBe('OK');
      expect(result.chunks.length).toBe(1000);
      expect(result.chunks.map((chunk) => chunk.toString())).toEqual(Array.from({ length: 1000 }, (_, i) => String(i)));
    },
  },
  {
    group: calls,
    name: 'reads a streamed request body',
    timeoutMs: 30_000,
    async run(kit) {
      const { rpc, target } = await kit.engine();
      const parts = ['hello ', 'streamed ', 'world'].map((part) => Buffer.from(part));
      const result = await rpc.callStreaming(target('upper'), parts);
      expect(codeOf(result), result.error?.message).toBe('OK');
      expect(result.body.toString()).toBe('HELLO STREAMED WORLD');
    },
  },
  {
    group: calls,
    name: 'carries a 16 MiB payload both ways',
    timeoutMs: 90_000,
    async run(kit) {
      const { rpc, target } = await kit.engine();
      const size = 16 * 1024 * 1024;
      const big = await rpc.call(target('big'), String(size), { timeoutMs: 60_000 });
      expect(codeOf(big), big.error?.message).toBe('OK');
      expect(big.body.length).toBe(size);
      for (const i of [0, 1, 250, 251, 1_000_003, size - 1]) expect(big.body[i]).toBe(i % 251);
      const echoed = await rpc.call(target('echo'), big.body, { timeoutMs: 60_000 });
      expect(codeOf(echoed), echoed.error?.message).toBe('OK');
      expect(echoed.body.equals(big.body)).toBe(true);
    },
  },
  {
    group: calls,
    name: "delivers a handler's error message to the caller as UNKNOWN",
    timeoutMs: 30_000,
    async run(kit) {
      const { rpc, target } = await kit.engine();
      const result = await rpc.call(target('fail'), 'xyz');
      expect(codeOf(result)).toBe('UNKNOWN');
      expect(result.error?.message).toContain('boom: xyz');
    },
  },
  {
    group: calls,
    name: 'answers NOT_FOUND for an unknown event',
    timeoutMs: 30_000,
    async run(kit) {
      const { rpc, target } = await kit.engine();
      const result = await rpc.call(target('no-such-event'), '');
      expect(codeOf(result), result.error?.message).toBe('NOT_FOUND');
    },
  },
  {
    group: calls,
    name: 'keeps module state across calls',
    timeoutMs: 30_000,
    async run(kit) {
      const { rpc, target } = await kit.engine();
      const first = Number((await rpc.call(target('counter'))).body.toString());
      const second = Number((await rpc.call(target('counter'))).body.toString());
      const third = Number((await rpc.call(target('counter'))).body.toString());
      expect(first).toBeGreaterThanOrEqual(1);
      expect([second, third]).toEqual([first + 1, first + 2]);
    },
  },
  {
    group: calls,
    name: 'runs as many sessions at once as its handshake declared (5 calls of 200 ms on one worker)',
    timeoutMs: 30_000,
    async run(kit) {
      const { rpc, target } = await kit.engine();
      const declared = kit.handshake!.concurrency;
      await rpc.call(target('echo'), 'warm');
      const started = Date.now();
      const results = await Promise.all(Array.from({ length: 5 }, () => rpc.call(target('concurrent'))));
      const elapsed = Date.now() - started;
      expect(results.map(codeOf)).toEqual(Array(5).fill('OK'));
      expect(results.every((result) => result.body.toString() === 'done')).toBe(true);
      // concurrency 0 = as many as the engine sends (the kit's profile allows 10).
      const rounds = Math.ceil(5 / (declared === 0 ? 10 : declared));
      const what = `concurrency ${declared} declared: 5 calls take ${rounds} round(s) of 200 ms, took ${elapsed} ms`;
      expect(elapsed, what).toBeGreaterThanOrEqual(rounds * 200 - 50);
      expect(elapsed, what).toBeLessThan((rounds * 200 + 1000) * kit.slow);
    },
  },
  {
    group: calls,
    name: 'gives handlers the request headers, with cocaine-event-id and cocaine-attempt on queued events',
    timeoutMs: 60_000,
    async run(kit) {
      const { rpc, target } = await kit.engine();
      const blocking = await rpc.call(target('headers'), '', { headers: { 'x-conformance': 'blocking' } });
      expect(codeOf(blocking), blocking.error?.message).toBe('OK');
      expect(JSON.parse(blocking.body.toString()), 'headers of a blocking call').toMatchObject({ 'x-conformance': 'blocking' });
      const { id } = await rpc.enqueue(target('headers'), '');
      const done = await waitFor('the queued event to finish', async () => {
        const status = await rpc.status(id);
        return status.state === 'COMPLETED' || status.state === 'FAILED' ? status : undefined;
      }, 30_000 * kit.slow);
      expect(done.state, done.lastError).toBe('COMPLETED');
      expect(JSON.parse(done.result.toString()), 'headers of a queued event').toMatchObject({ 'cocaine-event-id': id, 'cocaine-attempt': '1' });
    },
  },
  {
    group: calls,
    name: "captures the worker's stdout and stderr into the app's logs",
    timeoutMs: 30_000,
    async run(kit) {
      const { engine, rpc, target, app } = await kit.engine();
      expect((await rpc.call(target('log'))).body.toString()).toBe('ok');
      await waitFor('both lines in the app logs', async () => {
        const logs = await cli(engine, ['app', 'logs', app, '--lines', '200']);
        return logs.stdout.includes('hello stdout') && logs.stdout.includes('hello stderr');
      });
    },
  },
  {
    group: failures,
    name: 'fails a call whose worker crashes as UNAVAILABLE with the exit reason, keeps a crashlog, and recovers',
    timeoutMs: 60_000,
    async run(kit) {
      const { engine, rpc, target, app } = await kit.engine();
      const result = await rpc.call(target('crash'));
      expect(codeOf(result)).toBe('UNAVAILABLE');
      expect(result.error?.message).toMatch(/code 3/);
      expect(result.error?.message).toContain('about to crash');
      const crashlogs = await cliJson<Array<{ id: string }>>(engine, ['crashlog', 'list', app]);
      expect(crashlogs.length).toBeGreaterThan(0);
      const view = await cli(engine, ['crashlog', 'view', app, crashlogs[0].id]);
      expect(view.stdout).toContain('about to crash');
      const after = await rpc.call(target('echo'), 'alive');
      expect(after.body.toString()).toBe('alive');
    },
  },
  {
    group: failures,
    name: 'gets a hung worker killed by the heartbeat timeout (UNAVAILABLE), then serves again',
    timeoutMs: 60_000,
    async run(kit) {
      const { rpc, target } = await kit.engine();
      const started = Date.now();
      const result = await rpc.call(target('hang'));
      expect(codeOf(result)).toBe('UNAVAILABLE');
      expect(result.error?.message).toMatch(/heartbeat/);
      expect(Date.now() - started).toBeLessThan(6_000 * kit.slow);
      expect((await rpc.call(target('echo'), 'alive')).body.toString()).toBe('alive');
    },
  },
  {
    group: failures,
    name: 'fails a call past its deadline with DEADLINE_EXCEEDED and keeps serving',
    timeoutMs: 30_000,
    async run(kit) {
      const { rpc, target } = await kit.engine();
      const started = Date.now();
      const result = await rpc.call(target('sleep'), '5000', { timeoutMs: 300 });
      expect(codeOf(result)).toBe('DEADLINE_EXCEEDED');
      expect(Date.now() - started).toBeLessThan(2_500);
      expect((await rpc.call(target('echo'), 'alive')).body.toString()).toBe('alive');
    },
  },
  {
    group: failures,
    name: 'terminates gracefully on app stop: no crashlog, no process left',
    timeoutMs: 60_000,
    async run(kit) {
      const { engine, rpc, target, app } = await kit.engine();
      await rpc.call(target('echo'), 'warm');
      const before = (await cliJson<unknown[]>(engine, ['crashlog', 'list', app])).length;
      await cliJson(engine, ['app', 'stop', app]);
      await waitFor('the worker processes to exit', () => processesWithEnv(`COCAINE_APP=${app}\0`).length === 0, 10_000);
      expect((await cliJson<unknown[]>(engine, ['crashlog', 'list', app])).length).toBe(before);
      await cliJson(engine, ['app', 'start', app, '--profile', 'conformance']);
    },
  },
];
