/**
 * Protocol version 2 in the Python runtime: a handler's call / emit / storage requests over
 * worker-opened channels and its LOG records (docs/worker-protocol.md, "Services";
 * plugins/python/README.md). The protocol peer plays the engine; the app is
 * test/fixtures/python-services-app/main.py.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameType, WORKER_CHANNEL_BASE, encodeFrame } from '../../engine/protocol/frames.js';
import { packageRoot } from '../../engine/util/paths.js';
import plugin from '../../plugins/python/index.js';
import { startPeer, type Peer, type PeerOptions, type ServiceReply, type ServiceRequest } from '../helpers/protocol-peer.js';

const APP = join(packageRoot(), 'test', 'fixtures', 'python-services-app');
const STORED = Buffer.from([0, 1, 2, 255]);

const peers: Peer[] = [];

afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const never = () => new Promise<ServiceReply>(() => {});

async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * The engine's side of the services, enough for the app: `other@...` calls, `jobs@...` emits and a
 * small key space. Some callees need the peer itself (to stream a first chunk by hand).
 */
function engine(peer: () => Peer): (request: ServiceRequest) => Promise<ServiceReply> | ServiceReply {
  const firstChunk = (request: ServiceRequest, text: string) => peer().sendRaw(encodeFrame(FrameType.CHUNK, request.channel, Buffer.from(text)));
  return async (request) => {
    const { service, args, body } = request;
    if (service === 'call') {
      const [app, event] = String(args.target).split('@');
      if (app === 'other') {
        switch (event) {
          case 'echo':
            return { chunks: [body] };
          case 'json':
            return { json: { ok: true } };
          case 'upper':
            return { chunks: [body.toString().toUpperCase()] };
          case 'size':
            return { json: { bytes: body.length, last: body[body.length - 1] } };
          case 'big': {
            const data = Buffer.alloc(8 << 20);
            for (let i = 0; i < data.length; i++) data[i] = i % 251;
            return { chunks: Array.from({ length: 8 }, (_, i) => data.subarray(i << 20, (i + 1) << 20)) };
          }
          case 'pair':
            // Answers only once two calls are open at the same time.
            await waitFor(() => peer().services.filter((s) => s.args.target === 'other@pair').length >= 2, 'two concurrent calls');
            return { chunks: [body.toString().toUpperCase()] };
          case 'gone':
            return { error: { code: 'cancelled', message: 'the parent invocation ended' } };
          case 'who':
            // Answers only once two handlers are waiting at the same time.
            await waitFor(() => peer().services.filter((s) => s.args.target === 'other@who').length >= 2, 'two concurrent calls');
            return { chunks: [`reply to ${body}`] };
          case 'slow':
            // The rest of the result only once the handler has logged the first chunk.
            firstChunk(request, 'first');
            await waitFor(() => peer().logs.some((log) => log.message === 'chunk' && log.fields?.n === 1), 'the first chunk to reach the handler');
            return { chunks: ['second'] };
          case 'half':
            firstChunk(request, 'half');
            return { error: { code: 'worker_crashed', message: 'the callee died' } };
          case 'endless':
            firstChunk(request, 'first');
            return never();
          case 'never':
            return never();
        }
      }
      const code = app === 'deep' ? 'call_depth_exceeded' : app === 'late' ? 'deadline_exceeded' : 'app_not_found';
      return { error: { code, message: `${code} for ${args.target}` } };
    }
    if (service === 'emit') return { json: { id: args.id ?? `evt.${request.channel - WORKER_CHANNEL_BASE}`, duplicate: args.id === undefined } };
    if (service === 'storage') {
      switch (args.method) {
        case 'get':
          return { json: args.key === 'present' ? { found: true, revision: 4, value: STORED.toString('base64') } : { found: false } };
        case 'put':
          return { json: { revision: typeof args.revision === 'number' ? args.revision + 1 : 9 } };
        case 'delete':
          return { json: { deleted: args.revision === 7 || args.revision === undefined } };
        case 'list':
          return { json: args.after === 'p/a' ? { keys: ['p/b', 'p/c'], next: 'p/c' } : { keys: ['p/a'] } };
      }
    }
    return { error: { code: 'invalid_argument', message: `service ${service} ${JSON.stringify(args)}` } };
  };
}

/** A worker of the services app, started with the plugin's launch spec, the peer as its engine. */
async function worker(options: Partial<PeerOptions> = {}): Promise<Peer> {
  const launch = plugin.launch({
    app: 'test',
    workerId: 'unused',
    entrypoint: 'main.py',
    appDir: APP,
    endpoint: 'unused',
    pluginDir: plugin.runtimeDir,
    environment: {},
    placement: 'host',
  });
  let peer: Peer | undefined;
  peer = await startPeer({
    command: launch.command,
    args: launch.args,
    entrypoint: 'main.py',
    cwd: APP,
    onService: engine(() => peer!),
    ...options,
    env: { ...launch.env, ...options.env },
  });
  peers.push(peer);
  return peer;
}

/** Invokes an event; returns its engine channel and its result (text, or the worker's error). */
function invoke(peer: Peer, event: string, body = '') {
  const stream = peer.invokeStream(event);
  if (body) stream.write(body);
  stream.end();
  const result = stream.result.then(({ chunks, error }) => ({ text: Buffer.concat(chunks).toString(), error }));
  return { channel: stream.channel, result };
}

async function json(peer: Peer, event: string, body = ''): Promise<{ channel: number; value: unknown }> {
  const { channel, result } = invoke(peer, event, body);
  const { text, error } = await result;
  expect(error).toBeUndefined();
  return { channel, value: JSON.parse(text) };
}

describe('python runtime: protocol version 2 services', () => {
  it('handshakes with protocol 2 when the engine speaks 2', async () => {
    const peer = await worker();
    expect(await peer.handshake).toMatchObject({ protocol: 2, worker: peer.workerId });
  });

  it('call: SERVICE with the parent, args and body, then the whole result; channels 0x80000000 | k counting from 1', async () => {
    const peer = await worker();
    const { channel, value } = await json(peer, 'call_whole', 'ping');
    expect(value).toEqual({ body: 'ping', json: { ok: true } });
    expect(peer.services.map(({ channel, service, parent, args, body }) => ({ channel, service, parent, args, body: body.toString() }))).toEqual([
      { channel: WORKER_CHANNEL_BASE + 1, service: 'call', parent: channel, args: { target: 'other@echo', headers: { 'x-test': '1' }, timeout_ms: 2500 }, body: 'ping' },
      { channel: WORKER_CHANNEL_BASE + 2, service: 'call', parent: channel, args: { target: 'other@json', headers: {} }, body: '' },
    ]);
    const second = await json(peer, 'call_whole', 'again');
    expect(second.channel).not.toBe(channel);
    expect(peer.services.slice(2).map((s) => [s.channel, s.parent])).toEqual([
      [WORKER_CHANNEL_BASE + 3, second.channel],
      [WORKER_CHANNEL_BASE + 4, second.channel],
    ]);
    expect(peer.serviceCancels.size).toBe(0);
  });

  it('call: streams a request body given as an iterable of chunks', async () => {
    const peer = await worker();
    const { result } = invoke(peer, 'call_streamed_body');
    expect(await result).toEqual({ text: 'ONE,TWO,THREE', error: undefined });
    expect(peer.services[0].body.toString()).toBe('one,two,three');
  });

  it("call: iterates the callee's chunks as they arrive, before its END", async () => {
    const peer = await worker();
    const { value } = await json(peer, 'call_progress');
    // The peer sent 'second' and END only after the handler had logged the first chunk.
    expect(value).toEqual(['first', 'second']);
    expect(peer.logs.filter((log) => log.message === 'chunk').map((log) => log.fields)).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it("call: the engine's ERROR raises cocaine.ServiceError with its code and message", async () => {
    const peer = await worker();
    for (const [target, code] of [
      ['nope@x', 'app_not_found'],
      ['deep@x', 'call_depth_exceeded'],
      ['late@x', 'deadline_exceeded'],
    ]) {
      const { value } = await json(peer, 'call_error', target);
      expect(value).toEqual({ type: 'ServiceError', code, message: `${code} for ${target}` });
    }
    // An error after a chunk: the chunk is read, then iteration raises.
    const { value } = await json(peer, 'call_error_late');
    expect(value).toEqual({ seen: ['half'], error: { type: 'ServiceError', code: 'worker_crashed', message: 'the callee died' } });
    // The engine cancels a service channel when the parent goes away: that is the handler's Cancelled.
    expect((await json(peer, 'call_cancelled_by_engine')).value).toEqual({ type: 'Cancelled', code: 'cancelled' });
    expect((await json(peer, 'open_channels')).value).toBe(0);
  });

  it('checks arguments before anything is sent, naming the argument', async () => {
    const peer = await worker();
    const { value } = await json(peer, 'bad_arguments');
    expect(value).toEqual([
      'TypeError: target must be a str, got int',
      "TypeError: headers must be a dict of str to str, got 'n': 1",
      'ValueError: timeout must be a number of seconds >= 0, got -1',
      'TypeError: delay must be a number of seconds, got str',
      'TypeError: value must be bytes or str, got float',
      'ValueError: limit must be >= 1, got 0',
    ]);
    expect(peer.services).toEqual([]);
  });

  it('two handlers calling at once: each on its own channel, each gets its own answer', async () => {
    const peer = await worker();
    const first = invoke(peer, 'concurrent', 'first');
    const second = invoke(peer, 'concurrent', 'second');
    expect((await first.result).text).toBe('reply to first');
    expect((await second.result).text).toBe('reply to second');
    const byBody = new Map(peer.services.map((s) => [s.body.toString(), s]));
    expect(byBody.get('first')?.parent).toBe(first.channel);
    expect(byBody.get('second')?.parent).toBe(second.channel);
    expect(new Set(peer.services.map((s) => s.channel))).toEqual(new Set([WORKER_CHANNEL_BASE + 1, WORKER_CHANNEL_BASE + 2]));
  });

  it('moves 8 MiB each way through calls', async () => {
    const peer = await worker();
    const { value } = await json(peer, 'call_big');
    expect(value).toMatchObject({ sent: { bytes: 8 << 20, last: 7 }, received: 8 << 20, pattern: true });
    expect((value as { chunks: number }).chunks).toBeGreaterThanOrEqual(8);
  });

  it('20 handlers making 5 calls each at once: 100 channels, no answer crosses to another handler', async () => {
    const peer = await worker();
    const calls = Array.from({ length: 20 }, (_, i) => invoke(peer, 'many', `h${i}`));
    const results = await Promise.all(calls.map((call) => call.result));
    results.forEach(({ text, error }, i) => {
      expect(error).toBeUndefined();
      expect(JSON.parse(text)).toEqual([0, 1, 2, 3, 4].map((k) => `h${i}-${k}`));
    });
    expect(new Set(peer.services.map((s) => s.channel))).toEqual(new Set(Array.from({ length: 100 }, (_, k) => WORKER_CHANNEL_BASE + k + 1)));
    for (const [i, call] of calls.entries()) {
      expect(peer.services.filter((s) => s.parent === call.channel).map((s) => s.body.toString())).toEqual([0, 1, 2, 3, 4].map((k) => `h${i}-${k}`));
    }
  });

  it('1,000 round trips in a row; no channel left in the worker afterwards', async () => {
    const peer = await worker();
    const { value } = await json(peer, 'rounds', '1000');
    const { seconds } = value as { seconds: number };
    console.log(`python storage.get round trip through the peer: ${((seconds * 1e6) / 1000).toFixed(0)} µs (1,000 in a row)`);
    expect(peer.services).toHaveLength(1000);
    expect(peer.services[999].channel).toBe(WORKER_CHANNEL_BASE + 1000);
    expect((await json(peer, 'open_channels')).value).toBe(0);
  });

  it('emit: args in milliseconds, the body, and the answer as {id, duplicate}', async () => {
    const peer = await worker();
    const { channel, value } = await json(peer, 'emit', 'payload');
    expect(value).toEqual([
      { id: 'job-1', duplicate: false },
      { id: 'evt.2', duplicate: true },
    ]);
    expect(peer.services.map(({ service, parent, args, body }) => ({ service, parent, args, body: body.toString() }))).toEqual([
      { service: 'emit', parent: channel, args: { target: 'jobs@run', headers: { h: 'v' }, delay_ms: 1500, id: 'job-1' }, body: 'payload' },
      { service: 'emit', parent: channel, args: { target: 'jobs@run', headers: {}, delay_ms: 1100 }, body: '' },
    ]);
  });

  it('storage: get (base64 value and revision, or None), put with compare-and-set, delete, list with cursor', async () => {
    const peer = await worker();
    const { channel, value } = await json(peer, 'storage');
    expect(value).toEqual({
      present: [STORED.toString('hex'), 4],
      missing: null,
      put: 1,
      put_str: 9,
      deleted: true,
      list: [['p/b', 'p/c'], 'p/c'],
      last: [['p/a'], null],
    });
    expect(peer.services.every((s) => s.service === 'storage' && s.parent === channel)).toBe(true);
    expect(peer.services.map((s) => [s.args, s.body.toString('hex')])).toEqual([
      [{ method: 'get', key: 'present' }, ''],
      [{ method: 'get', key: 'missing' }, ''],
      [{ method: 'put', key: 'k', revision: 0 }, Buffer.from('\x00\xffbytes', 'latin1').toString('hex')],
      [{ method: 'put', key: 'k2' }, Buffer.from('text').toString('hex')],
      [{ method: 'delete', key: 'k', revision: 7 }, ''],
      [{ method: 'list', prefix: 'p/', limit: 2, after: 'p/a' }, ''],
      [{ method: 'list', prefix: '' }, ''],
    ]);
  });

  it('log: LOG frames on the invocation channel with level, message and flat fields', async () => {
    const peer = await worker();
    const { channel, result } = invoke(peer, 'logs');
    expect((await result).text).toBe('logged');
    expect(peer.logs.map(({ channel, level, message }) => [channel, level, message])).toEqual([
      [channel, 'debug', 'd'],
      [channel, 'info', 'hello'],
      [channel, 'warn', 'careful'],
      [channel, 'error', 'bad'],
    ]);
    expect(peer.logs[0].fields).toBeUndefined();
    expect(peer.logs[1].fields).toEqual({ user: 'u1', n: 3, ok: true, ratio: 0.5, big: 1e16, inf: 'inf', none: null, obj: expect.stringMatching(/^<object object at /), listed: '[1, 2]' });
    expect(peer.logs[3].fields).toEqual({ code: 'E1' });
  });

  it('after the handler returned, a thread of it logs off the closed channel and its call is refused', async () => {
    const peer = await worker();
    const { channel, result } = invoke(peer, 'late_log');
    expect((await result).text).toBe('returned');
    await waitFor(() => peer.stderr.some((line) => line.startsWith('late call')), 'the late call');
    expect(peer.stderr).toContain("late call: cancelled: the handler's invocation has already finished");
    // The late record goes out on channel 0: it belongs to no invocation any more.
    await waitFor(() => peer.logs.length >= 2, 'the late record');
    expect(peer.logs.map((log) => [log.channel, log.message])).toEqual([
      [channel, 'early'],
      [0, 'late'],
    ]);
    expect(peer.services).toEqual([]);
  });

  for (const code of ['cancelled', 'deadline'] as const) {
    it(`a cancel (${code}) of the invocation sends ERROR cancelled on its open service channel and raises Cancelled in the blocked call`, async () => {
      const peer = await worker();
      const { channel } = invoke(peer, 'held');
      await waitFor(() => peer.services.length === 1, 'the call');
      const call = peer.services[0];
      expect(call.parent).toBe(channel);
      peer.cancel(channel, code);
      await waitFor(() => peer.serviceCancels.has(call.channel), 'ERROR on the service channel');
      expect(peer.serviceCancels.get(call.channel)?.code).toBe('cancelled');
      await waitFor(() => peer.stderr.some((line) => line === `call raised Cancelled ${code}`), 'the handler to see Cancelled');
      expect((await json(peer, 'open_channels')).value).toBe(0);
      // The worker serves on.
      expect((await json(peer, 'call_whole', 'after')).value).toEqual({ body: 'after', json: { ok: true } });
    });
  }

  it('10 handlers blocked in calls, all cancelled at once: each service channel cancelled, none left open', async () => {
    const peer = await worker();
    const held = Array.from({ length: 10 }, () => invoke(peer, 'held'));
    await waitFor(() => peer.services.length === 10, 'ten calls');
    for (const { channel } of held) peer.cancel(channel);
    await waitFor(() => peer.serviceCancels.size === 10, 'ten service cancels');
    expect(new Set(peer.services.map((s) => s.parent))).toEqual(new Set(held.map((h) => h.channel)));
    await waitFor(() => peer.stderr.filter((line) => line === 'call raised Cancelled cancelled').length === 10, 'ten Cancelled');
    expect((await json(peer, 'open_channels')).value).toBe(0);
  });

  it('a handler that returns with a call result unread cancels that call before its END', async () => {
    const peer = await worker();
    const { result } = invoke(peer, 'abandon');
    expect(await result).toEqual({ text: 'left', error: undefined });
    // Recorded when the ERROR frame arrived, which came before the invocation's END.
    expect(peer.serviceCancels.get(peer.services[0].channel)?.code).toBe('cancelled');
    expect((await json(peer, 'open_channels')).value).toBe(0);
  });

  it('a request body that raises cancels its channel and fails the handler', async () => {
    const peer = await worker();
    const { result } = invoke(peer, 'body_fails');
    expect((await result).error).toEqual({ code: 'handler', message: 'RuntimeError: the body broke' });
    expect(peer.services).toHaveLength(1);
    expect(peer.serviceCancels.get(peer.services[0].channel)?.code).toBe('cancelled');
  });

  it('async handlers: call_async (streamed, gathered), storage *_async, emit_async, errors', async () => {
    const peer = await worker();
    const { value } = await json(peer, 'async_all');
    expect(value).toEqual({
      chunks: ['async body'],
      gathered: ['A', 'B'],
      get: [STORED.toString('hex'), 4],
      put: 4,
      list: [['p/a'], null],
      deleted: true,
      emit: { id: 'evt.8', duplicate: true },
      streamed: 'XY',
      error: 'app_not_found',
    });
    expect(peer.services.map((s) => s.args.target ?? s.args.method)).toEqual([
      'other@echo',
      'other@pair',
      'other@pair',
      'get',
      'put',
      'list',
      'delete',
      'jobs@run',
      'other@upper',
      'nope@x',
    ]);
    expect(peer.services.find((s) => s.args.target === 'other@upper')?.body.toString()).toBe('xy');
  });

  it('async handlers: a cancel cancels the awaited call and its service channel', async () => {
    const peer = await worker();
    const { channel } = invoke(peer, 'async_held');
    await waitFor(() => peer.services.length === 1, 'the call');
    peer.cancel(channel);
    await waitFor(() => peer.serviceCancels.has(peer.services[0].channel), 'ERROR on the service channel');
    await waitFor(() => peer.stderr.includes('async call cancelled'), 'the task to be cancelled');
  });
});

describe('python runtime: version 1 fallback', () => {
  it('handshakes with protocol 1; services raise ServiceError unsupported; logs go to stderr', async () => {
    const peer = await worker({ protocol: 1 });
    expect(await peer.handshake).toMatchObject({ protocol: 1 });
    const { value } = await json(peer, 'v1');
    expect(value).toMatchObject({ type: 'ServiceError', code: 'unsupported' });
    expect((value as { message: string }).message).toMatch(/need worker protocol version 2; this engine speaks version 1/);
    await waitFor(() => peer.stderr.includes('[info] to stderr k=v'), 'the log line on stderr');
    expect(peer.services).toEqual([]);
    expect(peer.logs).toEqual([]);
  });

  it('call passes routing_key and broadcast (placement across nodes) in its args', () => {
    const runtime = join(packageRoot(), 'plugins/python/runtime');
    const script = 'import json, cocaine._api as api; print(json.dumps(api.call_args("a@b", None, None, "user-7", True), sort_keys=True))';
    const run = spawnSync('/usr/bin/python3', ['-c', script], { env: { PYTHONPATH: runtime }, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({ target: 'a@b', headers: {}, routing_key: 'user-7', broadcast: true });
  });
});
