import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FrameType, encodeFrame } from '../../engine/protocol/frames.js';
import { packageRoot } from '../../engine/util/paths.js';
import plugin from '../../plugins/python/index.js';
import { startPeer, type Peer, type PeerOptions } from '../helpers/protocol-peer.js';

const CONFORMANCE = join(packageRoot(), 'examples', 'python-conformance');
const EVENTS = ['big', 'concurrent', 'counter', 'crash', 'echo', 'emit', 'fail', 'hang', 'headers', 'kv', 'log', 'note', 'relay', 'sleep', 'stream', 'upper'];

/** Features the conformance app does not use: plain functions, async, JSON, headers, cancellation of generators. */
const FIXTURE = `
import asyncio, sys, threading

def echo(request):
    return request.body()

def ping(request):
    return "pong"

def headers(request):
    return request.headers

def as_json(request):
    return {"event": request.event, "list": [1, True, None]}

def nothing(request):
    return None

def tally(request):
    sizes = [len(chunk) for chunk in request]
    return {"bytes": sum(sizes), "chunks": len(sizes)}

async def async_echo(request):
    await asyncio.sleep(0.01)
    return request.body()

async def async_count(request):
    n = int(request.text())
    async def gen():
        for i in range(n):
            yield str(i)
            await asyncio.sleep(0)
    return gen()

async def async_upper(request):
    async for chunk in request:
        yield chunk.upper()

async def async_fail(request):
    raise ValueError("async boom")

async def async_wait(request):
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        print("async cancelled", file=sys.stderr)
        raise
    return "too late"

def endless(request):
    try:
        while True:
            yield "x"
            threading.Event().wait(0.002)
    finally:
        print("generator closed " + request.cancel_code, file=sys.stderr)

def bad_chunk(request):
    yield "ok"
    yield 42

def body_after_cancel(request):
    try:
        request.body()
    except Exception as error:
        print("body raised " + type(error).__name__ + " " + error.code, file=sys.stderr)
        raise

def _private(request):
    return "never"
`;

let fixtureDir: string;
const peers: Peer[] = [];

beforeAll(() => {
  fixtureDir = mkdtempSync(join(tmpdir(), 'python-runtime-app-'));
  writeFileSync(join(fixtureDir, 'main.py'), FIXTURE);
  writeFileSync(join(fixtureDir, 'broken.py'), 'def x(:\n    pass\n');
  writeFileSync(join(fixtureDir, 'throws.py'), 'import json\nraise RuntimeError("init failed here")\n');
  writeFileSync(join(fixtureDir, 'empty.py'), 'import os\nVALUE = 1\n');
});

afterAll(() => rmSync(fixtureDir, { recursive: true, force: true }));

afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

/** A worker started the way the engine starts it: the plugin's launch spec. */
async function worker(options: Partial<PeerOptions> & { cwd?: string } = {}): Promise<Peer> {
  const cwd = options.cwd ?? CONFORMANCE;
  const launch = plugin.launch({
    app: 'test',
    workerId: 'unused',
    entrypoint: options.entrypoint ?? 'main.py',
    appDir: cwd,
    endpoint: 'unused',
    pluginDir: plugin.runtimeDir,
    environment: {},
    placement: 'host',
  });
  const peer = await startPeer({
    command: launch.command,
    args: launch.args,
    entrypoint: 'main.py',
    ...options,
    cwd,
    env: { ...launch.env, ...options.env },
  });
  peers.push(peer);
  return peer;
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('python runtime: the conformance events', () => {
  it('handshakes with its id, pid, python version, concurrency 0 and the events', async () => {
    const peer = await worker();
    const handshake = await peer.handshake;
    expect(handshake).toMatchObject({ protocol: 2, worker: peer.workerId, pid: peer.pid, concurrency: 0 });
    expect(handshake.runtime).toMatch(/^python 3\.\d+\.\d+$/);
    expect(handshake.events).toEqual(EVENTS);
  });

  it('echoes all 256 byte values', async () => {
    const peer = await worker();
    const data = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const { chunks, error } = await peer.invoke('echo', data);
    expect(error).toBeUndefined();
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect((await peer.invoke('echo')).chunks).toEqual([]);
  });

  it('streams 1,000 chunks in order', async () => {
    const peer = await worker();
    const { chunks, error } = await peer.invoke('stream', '1000');
    expect(error).toBeUndefined();
    expect(chunks.map(String)).toEqual(Array.from({ length: 1000 }, (_, i) => String(i)));
  });

  it('answers a streamed body chunk by chunk before the body ends', async () => {
    const peer = await worker();
    const stream = peer.invokeStream('upper');
    const iterator = stream.chunks[Symbol.asyncIterator]();
    stream.write('hello ');
    expect(String((await iterator.next()).value)).toBe('HELLO ');
    stream.write('streamed world');
    expect(String((await iterator.next()).value)).toBe('STREAMED WORLD');
    stream.end();
    expect((await iterator.next()).done).toBe(true);
    expect((await stream.result).error).toBeUndefined();
  });

  it('moves 16 MiB each way', async () => {
    const peer = await worker();
    const size = 16 * 1024 * 1024;
    const big = await peer.invoke('big', String(size));
    expect(big.error).toBeUndefined();
    const body = Buffer.concat(big.chunks);
    expect(body.length).toBe(size);
    for (const i of [0, 1, 250, 251, 1_000_003, size - 1]) expect(body[i]).toBe(i % 251);
    const echoed = await peer.invoke('echo', body);
    expect(echoed.error).toBeUndefined();
    expect(Buffer.concat(echoed.chunks).equals(body)).toBe(true);
    // The same body in 1 MiB pieces.
    const pieces = Array.from({ length: 16 }, (_, i) => body.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024));
    expect(Buffer.concat((await peer.invoke('echo', pieces)).chunks).equals(body)).toBe(true);
  });

  it("reports a handler's exception with its type and message, and keeps serving", async () => {
    const peer = await worker();
    expect((await peer.invoke('fail', 'xyz')).error).toEqual({ code: 'handler', message: 'RuntimeError: boom: xyz' });
    expect(text((await peer.invoke('echo', 'alive')).chunks)).toBe('alive');
  });

  it('answers an unknown event with not_found', async () => {
    const peer = await worker();
    const { error } = await peer.invoke('nope');
    expect(error?.code).toBe('not_found');
    expect(error?.message).toContain("'nope'");
  });

  it('answers a malformed INVOKE with a protocol error on its channel and keeps serving', async () => {
    const peer = await worker();
    await peer.handshake;
    const stream = peer.invokeStream('echo');
    // A second INVOKE on an open channel is ignored; a garbled one on a new channel is refused.
    peer.sendRaw(encodeFrame(FrameType.INVOKE, 99, Buffer.from('{"event": ')));
    stream.write('ok');
    stream.end();
    expect(text((await stream.result).chunks)).toBe('ok');
    const quoted = await peer.invoke('no "such" event');
    expect(quoted.error).toEqual({ code: 'not_found', message: `the app has no handler for the event 'no "such" event'` });
  });

  it('keeps module state across calls', async () => {
    const peer = await worker();
    const values = [];
    for (let i = 0; i < 3; i++) values.push(Number(text((await peer.invoke('counter')).chunks)));
    expect(values).toEqual([1, 2, 3]);
  });

  it('runs 20 calls at once, each in its own thread', async () => {
    const peer = await worker();
    await peer.handshake;
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: 20 }, () => peer.invoke('concurrent')));
    const elapsed = performance.now() - started;
    expect(results.map((result) => text(result.chunks))).toEqual(Array(20).fill('done'));
    // 20 × 200 ms one after the other would take 4 s.
    expect(elapsed).toBeLessThan(1000);
  });

  it('writes stdout and stderr as lines, never frames', async () => {
    const peer = await worker();
    expect(text((await peer.invoke('log')).chunks)).toBe('ok');
    await waitFor(() => peer.stdout.includes('hello stdout') && peer.stderr.includes('hello stderr'));
  });

  it('stops a sleep early when the call is cancelled', async () => {
    const peer = await worker();
    await peer.handshake;
    const started = performance.now();
    const call = peer.invokeStream('sleep');
    call.write('5000');
    call.end();
    await sleep(100);
    peer.cancel(call.channel);
    await waitFor(() => peer.stderr.includes('sleep cancelled'));
    expect(performance.now() - started).toBeLessThan(1500);
    // Nothing is sent on the cancelled channel; the worker goes on.
    expect(text((await peer.invoke('echo', 'after')).chunks)).toBe('after');
  });

  it('exits with the code of sys.exit() in a handler, its stderr line captured', async () => {
    const peer = await worker();
    await peer.handshake;
    const result = await peer.invoke('crash');
    expect(result.error?.code).toBe('internal');
    expect(await peer.exited).toEqual({ code: 3, signal: null });
    expect(peer.stderr).toContain('about to crash');
  });

  it('stops the whole process on hang: no heartbeat afterwards', async () => {
    const peer = await worker({ heartbeatMs: 30 });
    await peer.handshake;
    await waitFor(() => peer.heartbeats >= 2);
    void peer.invoke('hang');
    await waitFor(() => processState(peer.pid) === 'T');
    const before = peer.heartbeats;
    await sleep(300);
    expect(peer.heartbeats).toBe(before);
    peer.kill();
    expect((await peer.exited).signal).toBe('SIGKILL');
  });
});

describe('python runtime: lifecycle', () => {
  it('sends heartbeats every COCAINE_HEARTBEAT_MS', async () => {
    const peer = await worker({ heartbeatMs: 40 });
    await peer.handshake;
    await sleep(400);
    expect(peer.heartbeats).toBeGreaterThanOrEqual(5);
  });

  it('exits 0 on TERMINATE', async () => {
    const peer = await worker();
    await peer.handshake;
    peer.terminate();
    expect(await peer.exited).toEqual({ code: 0, signal: null });
  });

  it('exits 0 when the engine closes the socket, even with a call running', async () => {
    const peer = await worker();
    await peer.handshake;
    void peer.invoke('sleep', '10000');
    await sleep(50);
    peer.closeSocket();
    expect(await peer.exited).toEqual({ code: 0, signal: null });
  });

  it('exits after COCAINE_DISOWN_MS without a frame, once the engine has spoken', async () => {
    const peer = await worker({ heartbeatMs: 60_000, disownMs: 300, answerHeartbeats: false });
    await peer.handshake;
    // One frame (the engine accepted the handshake), then silence.
    peer.sendRaw(encodeFrame(FrameType.HEARTBEAT, 0));
    const started = Date.now();
    expect((await peer.exited).code).toBe(2);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(peer.stderr.join('\n')).toContain('nothing from the engine for 300 ms');
  });

  it('keeps running past COCAINE_DISOWN_MS while the engine answers heartbeats', async () => {
    const peer = await worker({ heartbeatMs: 50, disownMs: 300 });
    await peer.handshake;
    await sleep(700);
    expect(text((await peer.invoke('echo', 'still here')).chunks)).toBe('still here');
  });

  it('fails with exit 1 before the handshake when the app cannot be imported', async () => {
    const cases: Array<[string, RegExp]> = [
      ['broken.py', /broken\.py", line 1[\s\S]*SyntaxError/],
      ['throws.py', /Traceback[\s\S]*throws\.py", line 2[\s\S]*RuntimeError: init failed here/],
      ['missing.py', /no such file: .*missing\.py/],
      ['empty.py', /defines no handlers/],
    ];
    for (const [entrypoint, pattern] of cases) {
      const peer = await worker({ cwd: fixtureDir, entrypoint });
      await expect(peer.handshake).rejects.toThrow(/before the handshake/);
      expect((await peer.exited).code).toBe(1);
      const stderr = peer.stderr.join('\n');
      expect(stderr).toContain(`cannot load the entrypoint ${entrypoint}`);
      expect(stderr).toMatch(pattern);
    }
  });

  it('refuses to start without the COCAINE_* environment', async () => {
    const peer = await worker({ env: { COCAINE_ENDPOINT: '' } });
    expect((await peer.exited).code).toBe(1);
    expect(peer.stderr.join('\n')).toContain('COCAINE_ENDPOINT is not set');
  });
});

describe('python runtime: the app API', () => {
  const app = () => worker({ cwd: fixtureDir });

  it('takes the public functions of a module without decorators as handlers', async () => {
    const peer = await app();
    const events = (await peer.handshake).events!;
    expect(events).toContain('ping');
    expect(events).toContain('async_upper');
    expect(events).not.toContain('_private');
    expect(events).not.toContain('asyncio');
  });

  it('sends dicts and lists as JSON, None as an empty result, and passes headers', async () => {
    const peer = await app();
    expect(JSON.parse(text((await peer.invoke('as_json')).chunks))).toEqual({ event: 'as_json', list: [1, true, null] });
    const none = await peer.invoke('nothing');
    expect(none).toEqual({ chunks: [], error: undefined });
    const sent = { 'x-trace': 'abc', 'x-name': 'zoë "quoted" \\ 日本' };
    const headers = await peer.invoke('headers', undefined, { headers: sent });
    expect(JSON.parse(text(headers.chunks))).toEqual(sent);
    expect(JSON.parse(text((await peer.invoke('tally', ['a', 'bb', 'ccc'])).chunks))).toEqual({ bytes: 6, chunks: 3 });
  });

  it('runs async handlers and async generators', async () => {
    const peer = await app();
    expect(text((await peer.invoke('async_echo', 'awaited')).chunks)).toBe('awaited');
    expect((await peer.invoke('async_count', '5')).chunks.map(String)).toEqual(['0', '1', '2', '3', '4']);
    expect((await peer.invoke('async_fail')).error).toEqual({ code: 'handler', message: 'ValueError: async boom' });
    const stream = peer.invokeStream('async_upper');
    const iterator = stream.chunks[Symbol.asyncIterator]();
    stream.write('abc');
    expect(String((await iterator.next()).value)).toBe('ABC');
    stream.write('def');
    expect(String((await iterator.next()).value)).toBe('DEF');
    stream.end();
    expect((await iterator.next()).done).toBe(true);
  });

  it('fails a stream whose chunk is not bytes or str, after the chunks before it', async () => {
    const peer = await app();
    const result = await peer.invoke('bad_chunk');
    expect(result.chunks.map(String)).toEqual(['ok']);
    expect(result.error).toEqual({ code: 'handler', message: 'TypeError: a streamed chunk must be bytes, bytearray, memoryview or str, got int' });
  });

  it('on cancel: closes a generator, cancels an async task, raises Cancelled from body()', async () => {
    const peer = await app();
    const endless = peer.invokeStream('endless');
    endless.end();
    let seen = 0;
    for await (const _ of endless.chunks) if (++seen === 5) break;
    peer.cancel(endless.channel, 'deadline');
    await waitFor(() => peer.stderr.includes('generator closed deadline'));

    const waiting = peer.invokeStream('async_wait');
    waiting.end();
    await sleep(100);
    peer.cancel(waiting.channel);
    await waitFor(() => peer.stderr.includes('async cancelled'));

    const reading = peer.invokeStream('body_after_cancel');
    reading.write('part');
    await sleep(50);
    peer.cancel(reading.channel);
    await waitFor(() => peer.stderr.includes('body raised Cancelled cancelled'));
    // Frames for the finished channel are ignored.
    reading.write('late');
    reading.end();
    expect(text((await peer.invoke('ping')).chunks)).toBe('pong');
  });
});

describe('python runtime: cold start', () => {
  it('handshakes within a few milliseconds of a bare python3 start', async () => {
    const rounds = 5;
    const worker_: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const peer = await worker();
      await peer.handshake;
      worker_.push(peer.timing.handshakeMs!);
      await peer.close();
      bare.push(await bareStart());
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
    const [workerMs, bareMs] = [median(worker_), median(bare)];
    console.log(`python cold start: spawn → handshake ${workerMs.toFixed(1)} ms; bare python3 -c "print(1)" spawn → output ${bareMs.toFixed(1)} ms (medians of ${rounds})`);
    expect(workerMs).toBeLessThan(bareMs + 60);
  });
});

/** /usr/bin/python3 -c "print(1)": milliseconds from spawn to its first output. */
async function bareStart(): Promise<number> {
  const { spawn } = await import('node:child_process');
  const started = performance.now();
  const child = spawn(plugin.launch({ app: '', workerId: '', entrypoint: '', appDir: '', endpoint: '', pluginDir: '', environment: {}, placement: 'host' }).command, ['-c', 'print(1)'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const elapsed = await new Promise<number>((resolve) => child.stdout.once('data', () => resolve(performance.now() - started)));
  await new Promise((resolve) => child.once('close', resolve));
  return elapsed;
}

function processState(pid: number): string {
  try {
    // /proc/<pid>/stat: "pid (comm) S ..." — the state follows the closing parenthesis.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return '?';
  }
}
