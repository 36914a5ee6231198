/**
 * Protocol version 2 services in the native host (plugins/native/include/cocaine/worker.h,
 * "Services"; docs/worker-protocol.md, "Services (version 2)"): a C fixture compiled with the real
 * `cc`, run by the compiled host, with the protocol peer playing the engine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKER_CHANNEL_BASE } from '../../engine/protocol/frames.js';
import { packageRoot } from '../../engine/util/paths.js';
import { compileSharedObject, nativeRuntimeHost } from '../helpers/cc.js';
import { startPeer, type Peer, type PeerOptions, type ServiceReply, type ServiceRequest } from '../helpers/protocol-peer.js';

const FIXTURES = join(packageRoot(), 'test/fixtures/native-services-app');

let host: string;
let dir: string;
const peers: Peer[] = [];

async function start(entrypoint: string, options: Partial<PeerOptions> = {}): Promise<Peer> {
  const peer = await startPeer({
    command: process.execPath,
    args: [host],
    cwd: dir,
    entrypoint,
    ...options,
    env: { UV_THREADPOOL_SIZE: '1', ...options.env },
  });
  peers.push(peer);
  await peer.handshake;
  return peer;
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A peer-side store for the storage service, as the engine answers it (docs/worker-protocol.md). */
function storage(): (request: ServiceRequest) => ServiceReply {
  const store = new Map<string, { value: Buffer; revision: number }>();
  let revision = 0;
  return ({ args, body }) => {
    const key = String(args.key ?? '');
    const current = store.get(key);
    const mismatch = (): ServiceReply => ({ error: { code: 'revision_mismatch', message: `${key} is at revision ${current?.revision ?? 0}` } });
    switch (args.method) {
      case 'get':
        return { json: current ? { found: true, revision: current.revision, value: current.value.toString('base64') } : { found: false } };
      case 'put':
        if (args.revision !== undefined && args.revision !== (current?.revision ?? 0)) return mismatch();
        store.set(key, { value: body, revision: ++revision });
        return { json: { revision } };
      case 'delete':
        if (args.revision !== undefined && args.revision !== (current?.revision ?? 0)) return mismatch();
        return { json: { deleted: store.delete(key) } };
      case 'list': {
        const prefix = String(args.prefix ?? '');
        const keys = [...store.keys()].filter((k) => k.startsWith(prefix) && (args.after === undefined || k > String(args.after))).sort();
        const limit = Number(args.limit ?? 100);
        const page = keys.slice(0, limit);
        return { json: keys.length > limit ? { keys: page, next: page[page.length - 1] } : { keys: page } };
      }
      default:
        return { error: { code: 'invalid_argument', message: `no method ${String(args.method)}` } };
    }
  };
}

const never = new Promise<ServiceReply>(() => {});

function engine(): (request: ServiceRequest) => Promise<ServiceReply> | ServiceReply {
  const store = storage();
  return async (request) => {
    if (request.service === 'storage') return store(request);
    if (request.service === 'emit') {
      const id = typeof request.args.id === 'string' ? request.args.id : 'evt-1.1';
      return { json: { id, duplicate: id === 'seen' } };
    }
    const target = String(request.args.target);
    if (target === 'echo@upper') return { chunks: [request.body.toString().toUpperCase(), '!'] };
    if (target === 'echo@empty') return { chunks: [] };
    if (target === 'echo@big') return { chunks: [Buffer.alloc(3 << 20, 'a'), Buffer.alloc(5, 'b'), Buffer.alloc(1 << 20, 'c')] };
    if (target === 'echo@slow') {
      await sleep(1_500);
      return { chunks: ['slow done'] };
    }
    if (target === 'echo@hang') return never;
    if (target === 'gone@x') return { error: { code: 'app_not_found', message: "app 'gone' does not exist" } };
    if (target === 'echo@cancelled') return { error: { code: 'cancelled', message: 'the parent was cancelled' } };
    return { error: { code: 'event_not_found', message: target } };
  };
}

beforeAll(async () => {
  host = nativeRuntimeHost();
  dir = mkdtempSync(join(tmpdir(), 'cocaine-native-services-'));
  await compileSharedObject(join(FIXTURES, 'services.c'), join(dir, 'services.so'));
  await compileSharedObject(join(FIXTURES, 'abi1.c'), join(dir, 'abi1.so'));
  await compileSharedObject(join(packageRoot(), 'examples/native-echo/echo.c'), join(dir, 'echo.so'));
}, 60_000);

afterAll(async () => {
  await Promise.all(peers.map((peer) => peer.close()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('native services (protocol 2)', () => {
  let peer: Peer;
  beforeAll(async () => {
    peer = await start('services.so', { heartbeatMs: 50, onService: engine() });
  }, 20_000);

  /** Invokes and returns the result with the SERVICE requests it made. */
  async function invoke(event: string, body: string) {
    const before = peer.services.length;
    const logsBefore = peer.logs.length;
    const stream = peer.invokeStream(event);
    stream.write(body);
    stream.end();
    const result = await stream.result;
    return { ...result, channel: stream.channel, services: peer.services.slice(before), logs: peer.logs.slice(logsBefore) };
  }

  it('handshakes with protocol 2; services are refused in cocaine_init, where log goes to stderr', async () => {
    expect((await peer.handshake).protocol).toBe(2);
    expect(peer.stderr).toContain('init: storage_get returned 2: invalid_argument: services are available only while cocaine_handle runs');
    expect(peer.stderr).toContain('info: init log');
  });

  it('call: SERVICE call with target, headers, timeout, parent and the streamed body; the result comes back', async () => {
    const result = await invoke('call', 'echo@upper');
    expect(result.error).toBeUndefined();
    expect(text(result.chunks)).toBe('PING!');
    expect(result.services).toHaveLength(1);
    const [request] = result.services;
    expect(request.channel).toBeGreaterThanOrEqual(WORKER_CHANNEL_BASE);
    expect(request).toMatchObject({
      service: 'call',
      parent: result.channel,
      args: { target: 'echo@upper', headers: { 'x-from': 'native' }, timeout_ms: 1500 },
    });
    expect(request.body.toString()).toBe('ping');
  });

  it('call: worker channels count up and are never reused; no headers/body/timeout are left out', async () => {
    const first = await invoke('call-bare', 'echo@empty');
    const second = await invoke('call-bare', 'echo@empty');
    expect(text(first.chunks)).toBe('len=0');
    expect(first.services[0].args).toEqual({ target: 'echo@empty' });
    expect(first.services[0].body.length).toBe(0);
    expect(second.services[0].channel).toBe(first.services[0].channel + 1);
  });

  it('call: a result of several large chunks arrives whole', async () => {
    const result = await invoke('call', 'echo@big');
    expect(result.error).toBeUndefined();
    const body = Buffer.concat(result.chunks);
    expect(body.length).toBe((3 << 20) + 5 + (1 << 20));
    expect(body.subarray((3 << 20) - 1, (3 << 20) + 6).toString()).toBe('abbbbbc');
  });

  it("call: the engine's ERROR comes back as COCAINE_ERROR with `code: message`", async () => {
    const result = await invoke('call', 'gone@x');
    expect(result.error).toEqual({ code: 'handler', message: "rc=2 app_not_found: app 'gone' does not exist" });
  });

  it('call: an ERROR cancelled from the engine returns COCAINE_CANCELLED', async () => {
    const result = await invoke('call', 'echo@cancelled');
    expect(result.error?.message).toMatch(/^rc=1 /);
  });

  it('emit: target, id and delay; answers id and duplicate', async () => {
    const fresh = await invoke('emit', 'other@work - 250');
    expect(text(fresh.chunks)).toBe('id=evt-1.1 duplicate=0');
    expect(fresh.services[0]).toMatchObject({ service: 'emit', parent: fresh.channel, args: { target: 'other@work', delay_ms: 250 } });
    expect(fresh.services[0].args.id).toBeUndefined();
    expect(fresh.services[0].body.toString()).toBe('event-body');
    const dup = await invoke('emit', 'other@work seen 0');
    expect(text(dup.chunks)).toBe('id=seen duplicate=1');
    expect(dup.services[0].args).toEqual({ target: 'other@work', id: 'seen' });
  });

  it('storage: put, compare-and-set, get, list with cursor, delete', async () => {
    const put = await invoke('put', 'user:1 -1 alice');
    expect(text(put.chunks)).toMatch(/^revision=\d+$/);
    expect(put.services[0]).toMatchObject({ service: 'storage', parent: put.channel, args: { method: 'put', key: 'user:1' } });
    expect(put.services[0].args.revision).toBeUndefined();
    expect(put.services[0].body.toString()).toBe('alice');
    const revision = Number(text(put.chunks).split('=')[1]);

    const create = await invoke('put', 'user:1 0 bob');
    expect(create.services[0].args).toEqual({ method: 'put', key: 'user:1', revision: 0 });
    expect(create.error?.message).toMatch(/^rc=2 revision_mismatch: /);

    const cas = await invoke('put', `user:1 ${revision} carol`);
    expect(text(cas.chunks)).toBe(`revision=${revision + 1}`);
    await invoke('put', 'user:2 -1 dave');
    await invoke('put', 'other -1 x');

    const get = await invoke('get', 'user:1');
    expect(get.services[0].args).toEqual({ method: 'get', key: 'user:1' });
    expect(text(get.chunks)).toBe(`found=1 revision=${revision + 1} len=5 value=carol`);
    const missing = await invoke('get', 'nope');
    expect(text(missing.chunks)).toBe('found=0 revision=0 data=null');

    const page1 = await invoke('list', 'user: 1 -');
    expect(page1.services[0].args).toEqual({ method: 'list', prefix: 'user:', limit: 1 });
    expect(text(page1.chunks)).toBe('count=1 next=user:1 keys=user:1;');
    const page2 = await invoke('list', 'user: 5 user:1');
    expect(page2.services[0].args).toEqual({ method: 'list', prefix: 'user:', limit: 5, after: 'user:1' });
    expect(text(page2.chunks)).toBe('count=1 next= keys=user:2;');

    const deleted = await invoke('delete', 'user:2 -1');
    expect(deleted.services[0].args).toEqual({ method: 'delete', key: 'user:2' });
    expect(text(deleted.chunks)).toBe('deleted=1');
    expect(text((await invoke('delete', 'user:2 -1')).chunks)).toBe('deleted=0');
  });

  it('log: LOG frames on the invocation channel with level, message and fields; bad ones refused', async () => {
    const result = await invoke('log', 'it broke');
    expect(text(result.chunks)).toBe('0 0 2 2');
    await until('two LOG frames', () => peer.logs.filter((log) => log.channel === result.channel).length === 2);
    expect(peer.logs.filter((log) => log.channel === result.channel)).toEqual([
      { channel: result.channel, level: 'info', message: 'hello from C', fields: { n: 1, who: 'native' } },
      { channel: result.channel, level: 'error', message: 'it broke' },
    ]);
  });

  it('a ctx that is not the running invocation’s, headers that are not strings, a negative delay: fail before any frame', async () => {
    const badCtx = await invoke('bad-ctx', '');
    expect(badCtx.error?.message).toMatch(/^rc=2 invalid_argument: ctx \d+ is not the running invocation's/);
    const badHeaders = await invoke('bad-headers', '');
    expect(badHeaders.error?.message).toBe("rc=2 invalid_argument: headers_json: header 'x' must be a string");
    const badDelay = await invoke('emit', 'other@work - -5');
    expect(badDelay.error?.message).toBe('rc=2 invalid_argument: delay_ms must be >= 0, got -5');
    expect([...badCtx.services, ...badHeaders.services, ...badDelay.services]).toEqual([]);
  });

  it('serves hundreds of calls a second, one after the other (each a worker channel round trip)', async () => {
    const n = 300;
    const started = performance.now();
    const result = await invoke('call-loop', `${n} echo@upper`);
    const seconds = (performance.now() - started) / 1000;
    expect(result.error).toBeUndefined();
    expect(text(result.chunks)).toBe(`bytes=${2 * n}`);
    expect(result.services).toHaveLength(n);
    expect(new Set(result.services.map((request) => request.channel)).size).toBe(n);
    console.log(`native services: ${Math.round(n / seconds)} sequential calls/s through the peer`);
    // A hang detector, not a speed bound: the machine is shared.
    expect(seconds).toBeLessThan(30);
  });

  it('keeps heartbeating while the app thread is blocked in a long call', async () => {
    const before = peer.heartbeats;
    const started = Date.now();
    const result = await invoke('call', 'echo@slow');
    expect(text(result.chunks)).toBe('slow done');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
    // 50 ms heartbeats over 1.5 s: ~30; a blocked main thread would send none.
    expect(peer.heartbeats - before).toBeGreaterThanOrEqual(5);
  });

  it('cancelling the invocation during a blocked call: ERROR cancelled on the service channel, the call returns COCAINE_CANCELLED', async () => {
    const before = peer.services.length;
    const stream = peer.invokeStream('call-then-write');
    stream.write('echo@hang');
    stream.end();
    await until('the SERVICE request', () => peer.services.length > before);
    const request = peer.services[before];
    expect(request.parent).toBe(stream.channel);
    peer.cancel(stream.channel);
    await until('the service channel cancelled', () => peer.serviceCancels.has(request.channel));
    expect(peer.serviceCancels.get(request.channel)?.code).toBe('cancelled');
    await until('the handler to return', () => peer.stderr.includes('call-then-write: call 1 write 1'));
    // The worker is free again.
    const after = await invoke('call', 'echo@upper');
    expect(text(after.chunks)).toBe('PING!');
  });

  it('TERMINATE during a blocked call cancels it and the worker exits 0', async () => {
    const own = await start('services.so', { onService: engine() });
    const stream = own.invokeStream('call-then-write');
    stream.write('echo@hang');
    stream.end();
    await until('the SERVICE request', () => own.services.length === 1);
    own.terminate();
    expect(await own.exited).toEqual({ code: 0, signal: null });
    expect(own.serviceCancels.get(own.services[0].channel)?.code).toBe('cancelled');
  });
});

describe('examples/native-echo: relay and visits', () => {
  it('relay calls the target with the rest of the body; visits counts in storage with compare-and-set and logs', async () => {
    const peer = await start('echo.so', { onService: engine() });
    const relayed = await peer.invoke('relay', 'echo@upper quiet words');
    expect(relayed.error).toBeUndefined();
    expect(text(relayed.chunks)).toBe('QUIET WORDS!');
    expect(peer.services[0]).toMatchObject({ service: 'call', args: { target: 'echo@upper' } });
    expect(peer.services[0].body.toString()).toBe('quiet words');
    expect((await peer.invoke('relay', 'gone@x hi')).error).toEqual({ code: 'handler', message: "app_not_found: app 'gone' does not exist" });

    expect(text((await peer.invoke('visits')).chunks)).toBe('1');
    const second = await peer.invoke('visits');
    expect(text(second.chunks)).toBe('2');
    const puts = peer.services.filter((request) => request.args.method === 'put');
    expect(puts.map((request) => [request.args.revision, request.body.toString()])).toEqual([
      [0, '1'],
      [1, '2'],
    ]);
    await until('two visit logs', () => peer.logs.length === 2);
    expect(peer.logs.map((log) => log.fields)).toEqual([{ count: 1 }, { count: 2 }]);
  });
});

describe('native services: compatibility', () => {
  it('a version-1 .so (no cocaine_bind) still loads and serves under a protocol 2 engine', async () => {
    const peer = await start('abi1.so', { onService: engine() });
    expect((await peer.handshake).protocol).toBe(2);
    const result = await peer.invoke('echo', 'hello');
    expect(result.error).toBeUndefined();
    expect(text(result.chunks)).toBe('hello');
    expect(peer.services).toEqual([]);
  });

  it('under a protocol 1 engine: handshake 1, no cocaine_bind, helpers fail with unavailable, log goes to stderr', async () => {
    const peer = await start('services.so', { protocol: 1, onService: engine() });
    expect((await peer.handshake).protocol).toBe(1);
    const result = await peer.invoke('call', 'echo@upper');
    expect(result.error?.message).toMatch(/^rc=2 unavailable: no services/);
    const log = await peer.invoke('log', 'to stderr');
    expect(text(log.chunks)).toBe('0 0 2 0');
    await until('the log line on stderr', () => peer.stderr.includes('error: to stderr'));
    expect(peer.stderr).toContain('info: hello from C {"n":1,"who":"native"}');
    expect(peer.services).toEqual([]);
    expect(peer.logs).toEqual([]);
  });
});
