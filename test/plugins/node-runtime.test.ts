import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FrameType, encodeFrame } from '../../engine/protocol/frames.js';
import { startPeer, type Peer, type PeerOptions } from '../helpers/protocol-peer.js';
import { nodeRuntimeHost } from './node-runtime-build.js';

const FIXTURE = `
export function echo(request) { return request.body(); }
export function ping() { return 'pong'; }
export async function* many(request) {
  const n = Number(await request.text());
  for (let i = 0; i < n; i++) yield i + ',';
}
export function* syncMany(request) { for (let i = 0; i < 3000; i++) yield Buffer.from(String(i % 10)); }
export async function* upper(request) {
  for await (const chunk of request) yield chunk.toString().toUpperCase();
}
export async function tally(request) {
  let bytes = 0, chunks = 0;
  for await (const chunk of request) { bytes += chunk.length; chunks++; }
  return { bytes, chunks };
}
export async function big(request) { return Buffer.alloc(Number(await request.text()), 7); }
export function* bigStream() { for (let i = 0; i < 48; i++) yield Buffer.alloc(1024 * 1024, i); }
export function failSync() { throw new Error('sync boom'); }
export async function failAsync(request) { throw new Error('async boom: ' + (await request.text())); }
export function badChunk() { return (function* () { yield 'ok'; yield 42; })(); }
export function json() { return { a: 1, b: [true, null] }; }
export function nothing() {}
export function headers(request) { return request.headers; }
export async function slow(request) {
  const body = await request.body();
  await new Promise((resolve) => setTimeout(resolve, 50));
  return body;
}
export function waitCancel(request) {
  return new Promise((resolve) => {
    request.signal.addEventListener('abort', () => {
      process.stderr.write('aborted ' + request.signal.reason.code + '\\n');
      resolve('too late');
    });
  });
}
export async function* endless() {
  try {
    for (;;) { yield 'x'; await new Promise((resolve) => setTimeout(resolve, 2)); }
  } finally {
    process.stderr.write('generator closed\\n');
  }
}
export default {
  prefix: 'from default: ',
  greet(request) { return this.prefix + 'hi'; },
};
`;

let host: string;
let appDir: string;
const peers: Peer[] = [];

beforeAll(() => {
  host = nodeRuntimeHost();
  appDir = mkdtempSync(join(tmpdir(), 'node-runtime-app-'));
  writeFileSync(join(appDir, 'package.json'), '{"type":"module"}');
  writeFileSync(join(appDir, 'index.js'), FIXTURE);
  writeFileSync(join(appDir, 'broken.js'), 'export function x( {\n');
  writeFileSync(join(appDir, 'throws.js'), "throw new Error('init failed here');\n");
});

afterAll(() => rmSync(appDir, { recursive: true, force: true }));

afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

async function worker(options: Partial<PeerOptions> = {}): Promise<Peer> {
  const peer = await startPeer({ command: process.execPath, args: [host], cwd: appDir, ...options });
  peers.push(peer);
  return peer;
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString();

describe('node runtime: handshake and results', () => {
  it('handshakes with its id, pid, concurrency 0 and the events', async () => {
    const peer = await worker();
    const handshake = await peer.handshake;
    expect(handshake).toMatchObject({ protocol: 2, worker: peer.workerId, pid: peer.pid, concurrency: 0 });
    expect(handshake.runtime).toBe(`node ${process.versions.node}`);
    expect(handshake.events).toEqual(expect.arrayContaining(['echo', 'ping', 'many', 'greet']));
    expect(handshake.events).not.toContain('prefix');
    expect(handshake.events).not.toContain('default');
  });

  it('echoes all 256 byte values', async () => {
    const peer = await worker();
    const body = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const { chunks, error } = await peer.invoke('echo', body);
    expect(error).toBeUndefined();
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
  });

  it('sends strings, JSON, empty results, headers and default-object methods with their this', async () => {
    const peer = await worker();
    expect(text((await peer.invoke('ping')).chunks)).toBe('pong');
    expect(JSON.parse(text((await peer.invoke('json')).chunks))).toEqual({ a: 1, b: [true, null] });
    expect(await peer.invoke('nothing')).toEqual({ chunks: [] });
    expect(JSON.parse(text((await peer.invoke('headers', undefined, { headers: { 'x-trace': 'abc' } })).chunks))).toEqual({ 'x-trace': 'abc' });
    expect(text((await peer.invoke('greet')).chunks)).toBe('from default: hi');
  });

  it('streams 1,000 chunks in order, one frame each', async () => {
    const peer = await worker();
    const { chunks, error } = await peer.invoke('many', '1000');
    expect(error).toBeUndefined();
    expect(chunks).toHaveLength(1000);
    expect(chunks.map(String)).toEqual(Array.from({ length: 1000 }, (_, i) => `${i},`));
  });

  it('streams a sync generator across event-loop turns', async () => {
    const peer = await worker();
    const { chunks } = await peer.invoke('syncMany');
    expect(chunks).toHaveLength(3000);
    expect(chunks.slice(0, 12).map(String).join('')).toBe('012345678901');
  });

  it('lets a handler iterate the body as it arrives and answer before the body ends', async () => {
    const peer = await worker();
    const stream = peer.invokeStream('upper');
    const iterator = stream.chunks[Symbol.asyncIterator]();
    stream.write('abc');
    expect(String((await iterator.next()).value)).toBe('ABC');
    stream.write('def');
    expect(String((await iterator.next()).value)).toBe('DEF');
    stream.end();
    expect((await iterator.next()).done).toBe(true);
    expect((await stream.result).error).toBeUndefined();

    const { chunks } = await peer.invoke('tally', ['a', 'bb', 'ccc']);
    expect(JSON.parse(text(chunks))).toEqual({ bytes: 6, chunks: 3 });
  });

  it('moves 16 MiB each way', async () => {
    const peer = await worker();
    const body = Buffer.alloc(16 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4096) body[i] = i % 251;
    const echoed = await peer.invoke('echo', body);
    expect(echoed.error).toBeUndefined();
    expect(Buffer.concat(echoed.chunks).equals(body)).toBe(true);

    const big = await peer.invoke('big', String(16 * 1024 * 1024));
    expect(Buffer.concat(big.chunks).length).toBe(16 * 1024 * 1024);

    const streamed = await peer.invoke('bigStream');
    expect(streamed.chunks).toHaveLength(48);
    streamed.chunks.forEach((chunk, i) => {
      expect(chunk.length).toBe(1024 * 1024);
      expect(chunk[0]).toBe(i);
    });
  });

  it('runs 200 invocations at once on one worker', async () => {
    const peer = await worker();
    await peer.handshake;
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => peer.invoke('slow', `call ${i}`)));
    // 200 × 50 ms one after the other would take 10 s.
    expect(Date.now() - started).toBeLessThan(3000);
    results.forEach((result, i) => expect(text(result.chunks)).toBe(`call ${i}`));
  });
});

describe('node runtime: errors and cancellation', () => {
  it('reports handler errors with their message', async () => {
    const peer = await worker();
    expect((await peer.invoke('failSync')).error).toEqual({ code: 'handler', message: 'sync boom' });
    expect((await peer.invoke('failAsync', 'xyz')).error).toEqual({ code: 'handler', message: 'async boom: xyz' });
    const bad = await peer.invoke('badChunk');
    expect(bad.chunks.map(String)).toEqual(['ok']);
    expect(bad.error?.code).toBe('handler');
    expect(bad.error?.message).toMatch(/Buffer, Uint8Array or string, got a number/);
    // The worker is still fine afterwards.
    expect(text((await peer.invoke('ping')).chunks)).toBe('pong');
  });

  it('answers an unknown event with not_found', async () => {
    const peer = await worker();
    const { error } = await peer.invoke('nope');
    expect(error?.code).toBe('not_found');
    expect(error?.message).toContain("'nope'");
  });

  it('aborts the signal on cancel and on deadline', async () => {
    const peer = await worker();
    await peer.handshake;
    const first = peer.invokeStream('waitCancel');
    first.end();
    const second = peer.invokeStream('waitCancel');
    second.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    peer.cancel(first.channel, 'cancelled');
    peer.cancel(second.channel, 'deadline');
    await waitFor(() => peer.stderr.includes('aborted cancelled') && peer.stderr.includes('aborted deadline'));
    // Nothing is sent on a cancelled channel: the next call's answer is the next frame we see.
    expect(text((await peer.invoke('ping')).chunks)).toBe('pong');
  });

  it('stops pulling a generator when the call is cancelled', async () => {
    const peer = await worker();
    const stream = peer.invokeStream('endless');
    stream.end();
    let seen = 0;
    for await (const _ of stream.chunks) {
      if (++seen === 5) break;
    }
    peer.cancel(stream.channel);
    await waitFor(() => peer.stderr.includes('generator closed'));
  });
});

describe('node runtime: lifecycle', () => {
  it('sends heartbeats every COCAINE_HEARTBEAT_MS', async () => {
    const peer = await worker({ heartbeatMs: 40 });
    await peer.handshake;
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(peer.heartbeats).toBeGreaterThanOrEqual(5);
  });

  it('exits 0 on TERMINATE', async () => {
    const peer = await worker();
    await peer.handshake;
    peer.terminate();
    expect(await peer.exited).toEqual({ code: 0, signal: null });
  });

  it('exits when the engine closes the socket', async () => {
    const peer = await worker();
    await peer.handshake;
    peer.closeSocket();
    expect(await peer.exited).toEqual({ code: 0, signal: null });
  });

  it('exits after COCAINE_DISOWN_MS without a frame, once the engine has spoken', async () => {
    const peer = await worker({ heartbeatMs: 60_000, disownMs: 300, answerHeartbeats: false });
    await peer.handshake;
    // One frame (the engine accepted the handshake), then silence.
    peer.sendRaw(encodeFrame(FrameType.HEARTBEAT, 0));
    const started = Date.now();
    const exit = await peer.exited;
    expect(exit.code).toBe(2);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(peer.stderr.join('\n')).toContain('nothing from the engine for 300 ms');
  });

  it('keeps running past COCAINE_DISOWN_MS while the engine answers heartbeats', async () => {
    const peer = await worker({ heartbeatMs: 50, disownMs: 300 });
    await peer.handshake;
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(text((await peer.invoke('ping')).chunks)).toBe('pong');
  });

  it('fails at start, before the handshake, when the entrypoint is broken', async () => {
    for (const entrypoint of ['broken.js', 'throws.js', 'missing.js']) {
      const peer = await worker({ entrypoint });
      await expect(peer.handshake).rejects.toThrow(/before the handshake/);
      expect((await peer.exited).code).toBe(1);
      const stderr = peer.stderr.join('\n');
      expect(stderr).toContain(`cannot load the entrypoint ${entrypoint}`);
      if (entrypoint === 'broken.js') expect(stderr).toMatch(/broken\.js:\d+[\s\S]*SyntaxError/);
      if (entrypoint === 'throws.js') expect(stderr).toContain('init failed here');
      if (entrypoint === 'missing.js') expect(stderr).toMatch(/Cannot find module|ERR_MODULE_NOT_FOUND/);
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
