/**
 * Protocol version 2 in the Perl runtime: a handler's services ($req->call, call_each, emit,
 * storage, log) over worker channels, played by the protocol peer as the engine
 * (docs/worker-protocol.md, "Services"; plugins/perl/README.md).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType, encodeFrame } from '../../engine/protocol/frames.js';
import { packageRoot } from '../../engine/util/paths.js';
import perlPlugin from '../../plugins/perl/index.js';
import { startPeer, type Peer, type PeerOptions, type ServiceReply, type ServiceRequest } from '../helpers/protocol-peer.js';

const APP = join(packageRoot(), 'test', 'fixtures', 'perl-services-app');
const W = 0x80000000;

const peers: Peer[] = [];

afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

async function worker(options: Partial<PeerOptions> = {}): Promise<Peer> {
  const spec = perlPlugin.launch({
    app: 'test-app',
    workerId: 'unused',
    entrypoint: 'app.pl',
    appDir: APP,
    endpoint: 'unused',
    pluginDir: perlPlugin.runtimeDir,
    environment: {},
    placement: 'host',
  });
  const peer = await startPeer({ command: spec.command, args: spec.args, cwd: APP, entrypoint: 'app.pl', ...options, env: { ...spec.env, ...options.env } });
  peers.push(peer);
  return peer;
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString();

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A reply the test releases later (a callee that takes its time). */
function held(): { reply: Promise<ServiceReply>; release: (reply: ServiceReply) => void } {
  let release!: (reply: ServiceReply) => void;
  const reply = new Promise<ServiceReply>((resolve) => (release = resolve));
  return { reply, release };
}

describe('perl services: call', () => {
  it('handshakes with protocol 2 and sends SERVICE call with parent, args and body, then returns the whole result', async () => {
    const peer = await worker({ onService: () => ({ chunks: ['he', 'llo'] }) });
    expect((await peer.handshake).protocol).toBe(2);
    const spec = { target: 'other@echo', body: 'ping', options: { headers: { 'x-a': 'b' }, timeout: 1.5 } };
    const stream = peer.invokeStream('call');
    stream.write(JSON.stringify(spec));
    stream.end();
    const result = await stream.result;
    expect(text(result.chunks)).toBe('result=hello');
    expect(peer.services).toHaveLength(1);
    const [request] = peer.services;
    expect(request.channel).toBe(W + 1);
    expect(request).toMatchObject({ service: 'call', parent: stream.channel, args: { target: 'other@echo', headers: { 'x-a': 'b' }, timeout_ms: 1500 } });
    expect(request.body.toString()).toBe('ping');
  });

  it('passes routing_key and broadcast (placement across nodes) to the engine', async () => {
    const peer = await worker({ onService: () => ({ chunks: ['placed'] }) });
    const spec = { target: 'other@echo', body: '', options: { routing_key: 'user-7', broadcast: true } };
    const result = await peer.invoke('call', JSON.stringify(spec));
    expect(text(result.chunks)).toBe('result=placed');
    expect(peer.services[0]?.args).toEqual({ target: 'other@echo', routing_key: 'user-7', broadcast: true });
  });

  it('opens a new worker channel per request, counting up, with a body given as chunks', async () => {
    const peer = await worker({ onService: (request) => ({ chunks: [`${request.args.target}:${request.body.toString()}`] }) });
    const result = await peer.invoke('call_twice');
    expect(text(result.chunks)).toBe('a@one:1,b@two:23');
    expect(peer.services.map((request) => request.channel)).toEqual([W + 1, W + 2]);
    expect(peer.services.map((request) => request.args)).toEqual([{ target: 'a@one' }, { target: 'b@two' }]);
  });

  it('hands a streamed result to call_each chunk by chunk', async () => {
    const peer = await worker({ onService: () => ({ chunks: ['a', 'b', 'c'] }) });
    const result = await peer.invoke('call_each');
    expect(result.error).toBeUndefined();
    expect(result.chunks.map(String)).toEqual(['<a>', '<b>', '<c>']);
  });

  it('dies with a Cocaine::ServiceError carrying the engine code and message', async () => {
    const codes = ['app_not_found', 'deadline_exceeded', 'worker_crashed', 'handler_error', 'call_depth_exceeded'];
    let next = 0;
    const peer = await worker({ onService: () => ({ error: { code: codes[next], message: `it failed: ${codes[next++]}` } }) });
    for (const code of codes) {
      const result = await peer.invoke('call', JSON.stringify({ target: 'x@y' }));
      expect(text(result.chunks)).toBe(`${code}|it failed: ${code}|Cocaine::ServiceError`);
    }
    // Uncaught, it fails the invocation with its string form, "code: message".
    next = 0;
    const uncaught = await peer.invoke('call_uncaught');
    expect(uncaught.error).toEqual({ code: 'handler', message: 'app_not_found: it failed: app_not_found' });
  });

  it('gives up a call whose callback dies: ERROR cancelled on its channel', async () => {
    const peer = await worker({ onService: () => held().reply });
    const pending = peer.invoke('call_abandon');
    await waitFor(() => peer.services.length === 1);
    // Two chunks of a result that has not ended: the callback dies on the second.
    peer.sendRaw(encodeFrame(FrameType.CHUNK, W + 1, Buffer.from('1')));
    peer.sendRaw(encodeFrame(FrameType.CHUNK, W + 1, Buffer.from('2')));
    const result = await pending;
    expect(text(result.chunks)).toBe('abandoned after 2: enough\n');
    expect(peer.serviceCancels.get(W + 1)).toMatchObject({ code: 'cancelled' });
  });

  it('refuses bad options naming the field, without asking the engine', async () => {
    const peer = await worker();
    const result = await peer.invoke('bad_options');
    expect(text(result.chunks).split('\n')).toEqual([
      "invalid_argument|call: unknown option 'timout' (known: headers, timeout, routing_key, broadcast)|Cocaine::ServiceError",
      "invalid_argument|call: target must be 'app@event'|Cocaine::ServiceError",
      "invalid_argument|call: timeout must be a number of seconds >= 0, not 'soon'|Cocaine::ServiceError",
      "invalid_argument|emit: delay must be a number of seconds >= 0, not '-1'|Cocaine::ServiceError",
      "invalid_argument|storage->put: revision must be a whole number >= 0, not 'x'|Cocaine::ServiceError",
      "invalid_argument|log->info: fields must be a hash ref, not 'not a hash'|Cocaine::ServiceError",
    ]);
    expect(peer.services).toEqual([]);
  });
});

describe('perl services: emit and storage', () => {
  it('emits with headers, delay and id, and returns { id, duplicate }', async () => {
    const peer = await worker({ onService: (request) => ({ json: { id: request.args.id ?? 'ev-1', duplicate: request.args.id === 'again' } }) });
    const first = await peer.invoke('emit', JSON.stringify({ target: 'q@work', body: 'job', options: { headers: { h: 'v' }, delay: 0.25 } }));
    expect(text(first.chunks)).toBe('id=ev-1 duplicate=0');
    const second = await peer.invoke('emit', JSON.stringify({ target: 'q@work', options: { id: 'again' } }));
    expect(text(second.chunks)).toBe('id=again duplicate=1');
    expect(peer.services.map(({ service, args, body }) => ({ service, args, body: body.toString() }))).toEqual([
      { service: 'emit', args: { target: 'q@work', headers: { h: 'v' }, delay_ms: 250 }, body: 'job' },
      { service: 'emit', args: { target: 'q@work', id: 'again' }, body: '' },
    ]);
  });

  it('gets, puts, deletes and lists keys with revisions, and reports revision_mismatch', async () => {
    const store = new Map<string, { value: Buffer; revision: number }>([['k', { value: Buffer.from([0, 255, 65]), revision: 4 }]]);
    const onService = ({ args, body }: ServiceRequest): ServiceReply => {
      const key = args.key as string;
      switch (args.method) {
        case 'get': {
          const entry = store.get(key);
          return { json: entry ? { found: true, revision: entry.revision, value: entry.value.toString('base64') } : { found: false } };
        }
        case 'put': {
          if (args.revision === 3) return { error: { code: 'revision_mismatch', message: 'k is at revision 9' } };
          const revision = (store.get(key)?.revision ?? 0) + 1;
          store.set(key, { value: body, revision });
          return { json: { revision } };
        }
        case 'delete':
          return { json: { deleted: store.delete(key) } };
        case 'list':
          return { json: args.prefix === 'p/' ? { keys: ['p/1', 'p/2'], next: 'p/2' } : { keys: ['z'] } };
        default:
          return { error: { code: 'invalid_argument', message: `no method ${String(args.method)}` } };
      }
    };
    const peer = await worker({ onService });
    const result = await peer.invoke('storage');
    expect(result.error).toBeUndefined();
    expect(text(result.chunks).split('\n')).toEqual([
      'get=\u0000\ufffdA@4',
      'missing=0',
      'put=5',
      'put2=6',
      'delete=1',
      'delete2=0',
      'list=p/1+p/2 next=p/2',
      'list2=z next=none',
      'conflict=revision_mismatch|k is at revision 9|Cocaine::ServiceError',
    ]);
    expect(peer.services.every((request) => request.service === 'storage' && request.parent === 1)).toBe(true);
    expect(peer.services.map((request) => request.args)).toEqual([
      { method: 'get', key: 'k' },
      { method: 'get', key: 'missing' },
      { method: 'put', key: 'k', revision: 0 },
      { method: 'put', key: 'k' },
      { method: 'delete', key: 'k', revision: 7 },
      { method: 'delete', key: 'gone' },
      { method: 'list', prefix: 'p/', limit: 2, after: 'p/0' },
      { method: 'list' },
      { method: 'put', key: 'k', revision: 3 },
    ]);
    // A character string is stored UTF-8 encoded; bytes as they are.
    expect(peer.services[2].body).toEqual(Buffer.from('v☺'));
    expect(peer.services[3].body).toEqual(Buffer.from([0x70, 0xe9]));
  });
});

describe('perl services: log', () => {
  it('sends LOG frames on the invocation channel with level, message and flat fields', async () => {
    const peer = await worker();
    const result = await peer.invoke('log');
    expect(text(result.chunks)).toBe('logged');
    await waitFor(() => peer.logs.length === 4);
    expect(peer.logs).toEqual([
      { channel: 1, level: 'debug', message: 'starting' },
      {
        channel: 1,
        level: 'info',
        message: 'café "quoted"',
        fields: { user: 'ann', count: 3, ratio: 0.5, ok: true, missing: null, nested: '{"a":[1]}', numeric_string: '42' },
      },
      { channel: 1, level: 'warn', message: 'careful' },
      { channel: 1, level: 'error', message: 'failed', fields: { code: 'E1' } },
    ]);
  });
});

describe('perl services: blocking, heartbeats and cancellation', () => {
  it('keeps heartbeating and queues other channels while blocked in a call', async () => {
    const callee = held();
    const peer = await worker({ heartbeatMs: 50, onService: () => callee.reply });
    await peer.handshake;
    const blocked = peer.invoke('call', JSON.stringify({ target: 'slow@event' }));
    await waitFor(() => peer.services.length === 1);
    // The engine sends another invocation meanwhile: it waits for the blocked one (concurrency 1).
    const queued = peer.invoke('echo', 'second');
    let secondDone = false;
    void queued.then(() => (secondDone = true));
    const before = peer.heartbeats;
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(peer.heartbeats - before).toBeGreaterThanOrEqual(6);
    expect(secondDone).toBe(false);
    callee.release({ chunks: ['late'] });
    expect(text((await blocked).chunks)).toBe('result=late');
    expect(await queued).toEqual({ chunks: [Buffer.from('second')] });
  });

  for (const code of ['cancelled', 'deadline'] as const) {
    it(`a ${code} cancel of the invocation sends ERROR cancelled on the open call and unblocks the handler`, async () => {
      const peer = await worker({ onService: () => held().reply });
      await peer.handshake;
      const stream = peer.invokeStream('call_wait');
      stream.end();
      await waitFor(() => peer.services.length === 1);
      const started = Date.now();
      peer.cancel(stream.channel, code);
      await waitFor(() => peer.serviceCancels.has(W + 1));
      expect(peer.serviceCancels.get(W + 1)?.code).toBe('cancelled');
      await waitFor(() => peer.stderr.some((line) => line.startsWith('call_wait: ')));
      expect(peer.stderr).toContain(`call_wait: ${code}|call: the invocation was cancelled (${code})|Cocaine::ServiceError`);
      expect(Date.now() - started).toBeLessThan(5000);
      // The worker serves the next call, and sent nothing more on the cancelled one.
      expect(await peer.invoke('echo', 'next')).toEqual({ chunks: [Buffer.from('next')] });
    });
  }

  it('cancels every open channel of the invocation, a request made inside call_each included', async () => {
    const peer = await worker({ onService: () => held().reply });
    const stream = peer.invokeStream('mirror');
    stream.end();
    await waitFor(() => peer.services.length === 1);
    peer.sendRaw(encodeFrame(FrameType.CHUNK, W + 1, Buffer.from('piece')));
    await waitFor(() => peer.services.length === 2);
    expect(peer.services[1]).toMatchObject({ channel: W + 2, service: 'storage', parent: stream.channel, args: { method: 'put', key: 'copy' } });
    expect(peer.services[1].body.toString()).toBe('piece');
    peer.cancel(stream.channel);
    await waitFor(() => peer.serviceCancels.has(W + 1) && peer.serviceCancels.has(W + 2));
    expect([...peer.serviceCancels.values()].map((error) => error.code)).toEqual(['cancelled', 'cancelled']);
    await waitFor(() => peer.stderr.some((line) => line.startsWith('mirror: ')));
    expect(peer.stderr).toContain('mirror: cancelled|storage: the invocation was cancelled (cancelled)|Cocaine::ServiceError');
    expect(await peer.invoke('echo', 'next')).toEqual({ chunks: [Buffer.from('next')] });
  });

  it('drops frames the engine sends on a channel it gave up', async () => {
    let reply: () => Promise<ServiceReply> | ServiceReply = () => held().reply;
    const peer = await worker({ onService: () => reply() });
    const stream = peer.invokeStream('call_wait');
    stream.end();
    await waitFor(() => peer.services.length === 1);
    peer.cancel(stream.channel);
    await waitFor(() => peer.serviceCancels.has(W + 1));
    // A late answer on the finished channel: dropped, not an error, not given to the next call.
    peer.sendRaw(encodeFrame(FrameType.CHUNK, W + 1, Buffer.from('stale')));
    peer.sendRaw(encodeFrame(FrameType.END, W + 1));
    reply = () => ({ chunks: ['fresh'] });
    expect(await peer.invoke('echo', 'still fine')).toEqual({ chunks: [Buffer.from('still fine')] });
    expect(text((await peer.invoke('call', JSON.stringify({ target: 'x@y' }))).chunks)).toBe('result=fresh');
    expect(peer.services.at(-1)?.channel).toBe(W + 2);
  });
});

describe('perl services: version 1 fallback', () => {
  it('handshakes with protocol 1, refuses services clearly and logs to stderr, for an engine of version 1', async () => {
    const peer = await worker({ protocol: 1, onService: () => ({ chunks: ['never'] }) });
    expect((await peer.handshake).protocol).toBe(1);
    const result = await peer.invoke('call', JSON.stringify({ target: 'x@y' }));
    expect(text(result.chunks)).toBe(
      'unsupported|call: services need worker protocol version 2, and this engine speaks version 1 (COCAINE_PROTOCOL)|Cocaine::ServiceError',
    );
    expect(text((await peer.invoke('log')).chunks)).toBe('logged');
    await waitFor(() => peer.stderr.includes('[error] failed {"code":"E1"}'));
    expect(peer.stderr).toContain('[debug] starting');
    expect(peer.services).toEqual([]);
    expect(peer.logs).toEqual([]);
  });

  it('handshakes with protocol 2 for a newer engine, and exits 1 before the handshake on a malformed COCAINE_PROTOCOL', async () => {
    const newer = await worker({ protocol: 3 });
    expect((await newer.handshake).protocol).toBe(2);
    const broken = await worker({ env: { COCAINE_PROTOCOL: 'two' } });
    await expect(broken.handshake).rejects.toThrow(/before the handshake/);
    expect((await broken.exited).code).toBe(1);
    expect(broken.stderr.join('\n')).toContain("COCAINE_PROTOCOL is 'two'");
  });
});

describe('perl services: the README example', () => {
  it('runs as documented', async () => {
    const readme = readFileSync(join(packageRoot(), 'plugins', 'perl', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Services'));
    const example = /```perl\n([\s\S]*?)```/.exec(section)![1];
    const dir = mkdtempSync(join(tmpdir(), 'perl-services-readme-'));
    try {
      writeFileSync(join(dir, 'app.pl'), example);
      const onService = ({ service, args }: ServiceRequest): ServiceReply => {
        if (service === 'call') return { chunks: args.target === 'prices@quote' ? ['9.90'] : ['a\nb\n', 'c\n'] };
        if (service === 'emit') return { json: { id: args.id, duplicate: false } };
        return { json: args.method === 'get' ? { found: false } : { revision: 1 } };
      };
      const peer = await worker({ cwd: dir, onService });
      const result = await peer.invoke('checkout', 'sku-1');
      expect(result).toEqual({ chunks: [Buffer.from('ok 1')] });
      expect(peer.services.map((request) => [request.service, request.args])).toEqual([
        ['call', { target: 'prices@quote', headers: { 'x-currency': 'EUR' }, timeout_ms: 2000 }],
        ['call', { target: 'catalog@dump', timeout_ms: 30000 }],
        ['emit', { target: 'mailer@send', delay_ms: 60000, id: 'order-42-mail' }],
        ['storage', { method: 'get', key: 'cart/42' }],
        ['storage', { method: 'put', key: 'cart/42', revision: 0 }],
      ]);
      await waitFor(() => peer.logs.length === 1);
      expect(peer.logs[0]).toEqual({ channel: 1, level: 'info', message: 'checked out', fields: { order: 42, price: '9.90', mail: 'order-42-mail' } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
