/**
 * The services group (worker protocol version 2, docs/worker-protocol.md "Services"): the
 * conformance app's `relay`, `emit`, `kv` and `note` events use call, emit, storage and log: first
 * with the kit playing the engine (the SERVICE frame, cancel propagation), then through a real
 * engine, next to a helper app (examples/node-echo). A runtime that handshakes with
 * protocol 1 when offered 2 skips the group: services are optional.
 */
import { expect } from 'vitest';
import { FrameType, WORKER_CHANNEL_BASE } from '../../engine/protocol/frames.js';
import { cli, waitFor } from '../helpers/engine.js';
import type { CallResult } from '../helpers/rpc.js';
import { SkipCheck, type Check } from './check.js';
import { codeOf } from './checks-engine.js';
import type { KitContext } from './context.js';
import type { KitPeer } from './peer.js';

const group = 'services';
const NOT_OFFERED = 'protocol 1: services not offered';

/** Skips the rest of the group unless the runtime handshook with protocol 2. */
function servicesSkip(kit: KitContext): string | undefined {
  if (kit.servicesProtocol === undefined) return 'skipped: the protocol version the runtime speaks when offered 2 is unknown';
  return kit.servicesProtocol >= 2 ? undefined : NOT_OFFERED;
}

/** Calls one of the app's services events and answers its body, or fails saying what came back. */
async function ok(kit: KitContext, event: string, body: string): Promise<string> {
  const { rpc, target } = await kit.engine();
  const result = await rpc.call(target(event), body, { timeoutMs: 30_000 * kit.slow });
  expect(codeOf(result), `${event} "${body}": ${result.error?.message}`).toBe('OK');
  return result.body.toString();
}

/** Calls one of the app's services events that must fail; answers the outcome. */
async function failing(kit: KitContext, event: string, body: string): Promise<CallResult> {
  const { rpc, target } = await kit.engine();
  return rpc.call(target(event), body, { timeoutMs: 30_000 * kit.slow });
}

/** A failure the handler raised from a service error must carry the engine's code. */
function expectServiceCode(result: CallResult, code: string, what: string): void {
  expect(codeOf(result), `${what}: ${result.body.toString()}`).toBe('UNKNOWN');
  expect(result.error?.message, `${what}: the handler's error should carry the service's code "${code}"`).toContain(code);
}

/** A worker started directly with COCAINE_PROTOCOL=2 (the kit plays the engine), after its handshake. */
async function direct(kit: KitContext): Promise<KitPeer> {
  const peer = await kit.launch({ protocol: 2 });
  if (!(await peer.firstFrameWithin(kit.startupMs))) {
    await kit.release(peer);
    throw new Error(`no HANDSHAKE within ${kit.startupMs / 1000}s with COCAINE_PROTOCOL=2`);
  }
  return peer;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000}s waiting for ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const tail = (lines: string[]) => JSON.stringify(lines.slice(-5).join('\n'));

const nonce = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

export const servicesChecks: Check[] = [
  {
    group,
    name: 'handshakes with protocol 2 when the engine offers 2 (a protocol 1 runtime skips this group)',
    timeoutMs: 30_000,
    async run(kit) {
      const peer = await kit.launch({ protocol: 2 });
      try {
        if (!(await peer.firstFrameWithin(kit.startupMs))) throw new Error(`no HANDSHAKE within ${kit.startupMs / 1000}s with COCAINE_PROTOCOL=2`);
        const handshake = JSON.parse(peer.handshakeText ?? '{}') as { protocol?: unknown };
        if (handshake.protocol !== 1 && handshake.protocol !== 2) throw new Error(`with COCAINE_PROTOCOL=2 the HANDSHAKE's "protocol" is ${JSON.stringify(handshake.protocol)}, expected 2 (or 1: no services)`);
        kit.servicesProtocol = handshake.protocol;
      } finally {
        await kit.release(peer);
      }
      if (kit.servicesProtocol === 1) throw new SkipCheck(NOT_OFFERED);
    },
  },
  {
    group,
    name: 'opens a worker channel for a call: SERVICE (high-bit channel, parent, target), the body, END; hands the answer to the handler',
    timeoutMs: 30_000,
    skip: servicesSkip,
    async run(kit) {
      const peer = await direct(kit);
      try {
        const invocation = peer.invoke('relay', ['other@event the ', 'request body']);
        const opened = await peer.serviceWithin(10_000 * kit.slow, (services) => services.some((service) => service.ended || service.error));
        const [service] = peer.services.values();
        if (!opened) throw new Error(service ? `the worker sent SERVICE ${service.text} but no END on its channel within 10 s` : `no SERVICE frame within 10 s of invoking relay (stderr: ${tail(peer.stderr)})`);
        expect(peer.services.size, 'one call opens one channel').toBe(1);
        expect(service.id, `the channel ${service.id} must have the high bit set (0x80000000 | k, k >= 1)`).toBeGreaterThan(WORKER_CHANNEL_BASE);
        expect(service.request, `SERVICE payload ${service.text}`).toMatchObject({ service: 'call', parent: invocation.id, args: { target: 'other@event' } });
        expect(Buffer.concat(service.chunks).toString(), 'the request body, as CHUNKs before END').toBe('the request body');
        expect(service.error, 'the worker cancelled its own call').toBeUndefined();
        peer.answerService(service.id, { chunks: ['the ', 'answer'] });
        const done = await withTimeout(invocation.done, 10_000 * kit.slow, 'the relay invocation to end after the answer');
        expect(done, 'relay ends with END').toMatchObject({ end: true });
        expect(Buffer.concat(invocation.chunks).toString(), "the handler's result is the call's answer").toBe('the answer');
      } finally {
        await kit.release(peer);
      }
    },
  },
  {
    group,
    name: 'cancelling an invocation cancels its open service channel (ERROR cancelled) and unblocks the handler',
    timeoutMs: 30_000,
    skip: servicesSkip,
    async run(kit) {
      const peer = await direct(kit);
      try {
        const invocation = peer.invoke('relay', ['slow@event waiting']);
        if (!(await peer.serviceWithin(10_000 * kit.slow, (services) => services.some((service) => service.ended)))) {
          throw new Error(`no SERVICE and END within 10 s of invoking relay (stderr: ${tail(peer.stderr)})`);
        }
        const [service] = peer.services.values();
        peer.cancel(invocation);
        const cancelled = await peer.serviceWithin(5_000 * kit.slow, () => service.error !== undefined);
        expect(cancelled, `no ERROR on the service channel ${service.id} within 5 s of the invocation's cancel`).toBe(true);
        expect(service.error?.code, `the cancel sent on the service channel: ${JSON.stringify(service.error)}`).toBe('cancelled');
        await new Promise((resolve) => setTimeout(resolve, 200));
        const stray = invocation.afterCancel.filter((frame) => frame.type !== FrameType.ERROR);
        expect(stray.map((frame) => frame.type), 'frames other than ERROR on the cancelled invocation').toEqual([]);
        // The handler is no longer blocked: the worker serves the next call (one at a time or not).
        const next = peer.invoke('echo', ['after the cancel']);
        const done = await withTimeout(next.done, 10_000 * kit.slow, 'an echo after the cancel (is the handler still blocked on its call?)');
        expect(done).toMatchObject({ end: true });
        expect(Buffer.concat(next.chunks).toString()).toBe('after the cancel');
      } finally {
        await kit.release(peer);
      }
    },
  },
  {
    group,
    name: "call: a handler calls another app's event and returns its result",
    timeoutMs: 60_000,
    skip: servicesSkip,
    async run(kit) {
      const helper = await kit.helperApp();
      expect(await ok(kit, 'relay', `${helper}@echo hello from a handler`)).toBe('hello from a handler');
      const payload = 'x'.repeat(100_000);
      expect((await ok(kit, 'relay', `${helper}@echo ${payload}`)).length).toBe(payload.length);
    },
  },
  {
    group,
    name: 'call: an error (unknown app) reaches the handler with its code, app_not_found',
    timeoutMs: 30_000,
    skip: servicesSkip,
    async run(kit) {
      expectServiceCode(await failing(kit, 'relay', 'no-such-app-conformance@echo x'), 'app_not_found', 'relay to an unknown app');
    },
  },
  {
    group,
    name: 'emit: queues an event that later runs; an id queued twice is a duplicate',
    timeoutMs: 60_000,
    skip: servicesSkip,
    async run(kit) {
      const { rpc } = await kit.engine();
      const helper = await kit.helperApp();
      const completed = async (id: string) => {
        const status = await waitFor(`the emitted event ${id} to finish`, async () => {
          const current = await rpc.status(id).catch(() => undefined);
          return current && (current.state === 'COMPLETED' || current.state === 'FAILED') ? current : undefined;
        }, 30_000 * kit.slow);
        expect(status.state, status.lastError).toBe('COMPLETED');
        return status.result.toString();
      };
      const [id, duplicate] = (await ok(kit, 'emit', `${helper}@echo - emitted body`)).split(' ');
      expect(duplicate, 'a fresh emit is no duplicate').toBe('false');
      expect(await completed(id), 'the emitted event ran in the helper app').toBe('emitted body');
      const chosen = `conformance-${nonce()}`;
      expect(await ok(kit, 'emit', `${helper}@echo ${chosen} first`)).toBe(`${chosen} false`);
      expect(await ok(kit, 'emit', `${helper}@echo ${chosen} second`), 'the same id again').toBe(`${chosen} true`);
      expect(await completed(chosen), 'the duplicate was not queued').toBe('first');
    },
  },
  {
    group,
    name: 'storage: put, get, list (paged) and delete round trip',
    timeoutMs: 60_000,
    skip: servicesSkip,
    async run(kit) {
      const prefix = `kit-${nonce()}/`;
      const first = Number(await ok(kit, 'kv', `put ${prefix}a one`));
      expect(first, 'put answers the new revision, a positive number').toBeGreaterThan(0);
      expect(await ok(kit, 'kv', `get ${prefix}a`)).toBe(`${first} one`);
      const second = Number(await ok(kit, 'kv', `put ${prefix}a uno`));
      expect(second, 'a second put gets a higher revision').toBeGreaterThan(first);
      expect(await ok(kit, 'kv', `get ${prefix}a`)).toBe(`${second} uno`);
      await ok(kit, 'kv', `put ${prefix}b two`);
      await ok(kit, 'kv', `put ${prefix}c three`);
      expect(await ok(kit, 'kv', `get ${prefix}missing`)).toBe('none');
      const page = await ok(kit, 'kv', `list ${prefix} 2`);
      const [keys, next] = page.split(' next=');
      expect(keys, `first page: ${page}`).toBe(`${prefix}a,${prefix}b`);
      expect(next, `first page names the next cursor: ${page}`).not.toBe('');
      expect(await ok(kit, 'kv', `list ${prefix} 2 ${next}`), 'the second (last) page').toBe(`${prefix}c next=`);
      expect(await ok(kit, 'kv', `delete ${prefix}a`)).toBe('deleted');
      expect(await ok(kit, 'kv', `get ${prefix}a`)).toBe('none');
      expect(await ok(kit, 'kv', `delete ${prefix}a`), 'deleting a missing key').toBe('missing');
      expect(await ok(kit, 'kv', `list ${prefix} 10`)).toBe(`${prefix}b,${prefix}c next=`);
    },
  },
  {
    group,
    name: 'storage: compare-and-set with a stale revision, or 0 on an existing key, fails with revision_mismatch',
    timeoutMs: 60_000,
    skip: servicesSkip,
    async run(kit) {
      const key = `kit-${nonce()}/cas`;
      const created = Number(await ok(kit, 'kv', `put ${key} v1 0`));
      expect(created, 'put with revision 0 creates the key').toBeGreaterThan(0);
      expectServiceCode(await failing(kit, 'kv', `put ${key} again 0`), 'revision_mismatch', 'put with revision 0 on an existing key');
      const updated = Number(await ok(kit, 'kv', `put ${key} v2 ${created}`));
      expect(updated).toBeGreaterThan(created);
      expectServiceCode(await failing(kit, 'kv', `put ${key} v3 ${created}`), 'revision_mismatch', 'put with a stale revision');
      expectServiceCode(await failing(kit, 'kv', `delete ${key} ${created}`), 'revision_mismatch', 'delete with a stale revision');
      expect(await ok(kit, 'kv', `get ${key}`), 'the failed writes changed nothing').toBe(`${updated} v2`);
      expect(await ok(kit, 'kv', `delete ${key} ${updated}`)).toBe('deleted');
    },
  },
  {
    group,
    name: "log: a record appears in the app's logs with the event, level, message and fields",
    timeoutMs: 60_000,
    skip: servicesSkip,
    async run(kit) {
      const { engine, app } = await kit.engine();
      const message = `conformance-note-${nonce()}`;
      expect(await ok(kit, 'note', `warn ${message}`)).toBe('ok');
      expect(await ok(kit, 'note', `error ${message}-2`)).toBe('ok');
      type Line = { stream?: string; record?: Record<string, unknown> };
      const records = await waitFor('both records in the app logs (--json app logs)', async () => {
        const logs = await cli(engine, ['--json', 'app', 'logs', app, '--lines', '1000']);
        const lines = logs.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Line);
        const found = lines.filter((line) => line.stream === 'log' && String(line.record?.message).startsWith(message));
        return found.length >= 2 ? found : undefined;
      }, 20_000 * kit.slow);
      expect(records.map((line) => line.record)).toEqual([
        expect.objectContaining({ app, event: 'note', level: 'warn', message, fields: { kit: 'conformance' } }),
        expect.objectContaining({ app, event: 'note', level: 'error', message: `${message}-2`, fields: { kit: 'conformance' } }),
      ]);
    },
  },
];
