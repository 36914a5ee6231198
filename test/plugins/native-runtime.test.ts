/**
 * The native host through the protocol peer: the example app compiled with the real `cc`, loaded
 * by the compiled host (dist/plugins/native/runtime/host.js) through koffi.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../engine/util/paths.js';
import { compileSharedObject, nativeRuntimeHost } from '../helpers/cc.js';
import { startPeer, type Peer, type PeerOptions } from '../helpers/protocol-peer.js';

const ECHO_SOURCE = join(packageRoot(), 'examples/native-echo/echo.c');

const APPS: Record<string, string> = {
  // One write of N bytes (N from the body), larger than a frame may carry.
  'one-write.c': `
#include <cocaine/worker.h>
#include <stdlib.h>
int cocaine_abi_version(void) { return COCAINE_NATIVE_ABI_VERSION; }
int cocaine_handle(const cocaine_request *req, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  size_t n = (size_t)strtoul((const char *)req->body, NULL, 10);
  uint8_t *data = malloc(n);
  for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i % 251);
  write(ctx, data, n);
  free(data);
  return COCAINE_OK;
}
`,
  'abi999.c': `
#include <cocaine/worker.h>
int cocaine_abi_version(void) { return 999; }
int cocaine_handle(const cocaine_request *req, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  return COCAINE_NOT_FOUND;
}
`,
  'no-handle.c': `
#include <cocaine/worker.h>
int cocaine_abi_version(void) { return COCAINE_NATIVE_ABI_VERSION; }
`,
  'refuses.c': `
#include <cocaine/worker.h>
#include <stdio.h>
int cocaine_abi_version(void) { return COCAINE_NATIVE_ABI_VERSION; }
int cocaine_init(const char *app, char *error, size_t error_len) {
  snprintf(error, error_len, "no database configured for %s", app);
  return 1;
}
int cocaine_handle(const cocaine_request *req, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  return COCAINE_NOT_FOUND;
}
`,
};

let host: string;
let dir: string;
const peers: Peer[] = [];

async function start(entrypoint = 'echo.so', options: Partial<PeerOptions> = {}): Promise<Peer> {
  const peer = await startPeer({
    command: process.execPath,
    args: [host],
    cwd: dir,
    entrypoint,
    ...options,
    env: { UV_THREADPOOL_SIZE: '1', ...options.env },
  });
  peers.push(peer);
  return peer;
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

beforeAll(async () => {
  host = nativeRuntimeHost();
  dir = mkdtempSync(join(tmpdir(), 'cocaine-native-'));
  await compileSharedObject(ECHO_SOURCE, join(dir, 'echo.so'));
  for (const [file, source] of Object.entries(APPS)) {
    writeFileSync(join(dir, file), source);
    await compileSharedObject(join(dir, file), join(dir, file.replace(/\.c$/, '.so')));
  }
  writeFileSync(join(dir, 'not-elf.so'), 'this is not a shared object\n');
}, 60_000);

afterAll(async () => {
  await Promise.all(peers.map((peer) => peer.close()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('native host: calls', () => {
  let peer: Peer;
  beforeAll(async () => {
    peer = await start('echo.so', { heartbeatMs: 50 });
    await peer.handshake;
  }, 20_000);

  it('handshakes with concurrency 1, the events of cocaine_events, after cocaine_init', async () => {
    const handshake = await peer.handshake;
    expect(handshake.protocol).toBe(2); // the peer announces COCAINE_PROTOCOL 2
    expect(handshake.worker).toBe(peer.workerId);
    expect(handshake.concurrency).toBe(1);
    expect(handshake.runtime).toMatch(/^native abi 1 /);
    expect(handshake.events).toEqual(expect.arrayContaining(['echo', 'stream', 'fail', 'counter', 'segv', 'hang', 'sleep']));
    expect(peer.stderr).toContain('native-echo: init for app test-app');
  });

  it('echoes all 256 byte values, sent in several chunks', async () => {
    const data = Buffer.alloc(256 * 4);
    for (let i = 0; i < data.length; i++) data[i] = i % 256;
    const result = await peer.invoke('echo', [data.subarray(0, 100), data.subarray(100, 700), data.subarray(700)]);
    expect(result.error).toBeUndefined();
    expect(Buffer.concat(result.chunks).equals(data)).toBe(true);
  });

  it('answers an empty body with an empty result', async () => {
    const result = await peer.invoke('echo');
    expect(result.error).toBeUndefined();
    expect(Buffer.concat(result.chunks).length).toBe(0);
  });

  it('streams 1,000 chunks in order', async () => {
    const result = await peer.invoke('stream', '1000');
    expect(result.error).toBeUndefined();
    expect(result.chunks.map((chunk) => chunk.toString())).toEqual(Array.from({ length: 1000 }, (_, i) => String(i)));
  });

  it('carries 16 MiB both ways', async () => {
    const size = 16 * 1024 * 1024;
    const big = await peer.invoke('big', String(size));
    expect(big.error).toBeUndefined();
    const body = Buffer.concat(big.chunks);
    expect(body.length).toBe(size);
    for (const i of [0, 1, 250, 251, 1_000_003, size - 1]) expect(body[i]).toBe(i % 251);
    const parts = Array.from({ length: 16 }, (_, i) => body.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024));
    const echoed = await peer.invoke('echo', parts);
    expect(echoed.error).toBeUndefined();
    expect(Buffer.concat(echoed.chunks).equals(body)).toBe(true);
  }, 30_000);

  it('hands the app the whole streamed body', async () => {
    const stream = peer.invokeStream('upper');
    for (const part of ['hello ', 'streamed ', 'world']) {
      stream.write(part);
      await sleep(5);
    }
    stream.end();
    const result = await stream.result;
    expect(result.error).toBeUndefined();
    expect(text(result.chunks)).toBe('HELLO STREAMED WORLD');
  });

  it("delivers the handler's error message", async () => {
    const result = await peer.invoke('fail', 'xyz');
    expect(result.error).toEqual({ code: 'handler', message: 'boom: xyz' });
  });

  it('answers not_found for an event the app does not handle', async () => {
    const result = await peer.invoke('no-such-event', 'x');
    expect(result.error?.code).toBe('not_found');
    expect(result.error?.message).toContain('no-such-event');
  });

  it('counts the words of the body (wordcount)', async () => {
    expect(text((await peer.invoke('wordcount', '  the quick\tbrown\n\nfox  ')).chunks)).toBe('4');
    expect(text((await peer.invoke('wordcount')).chunks)).toBe('0');
  });

  it('keeps static state across calls', async () => {
    const values = [];
    for (let i = 0; i < 3; i++) values.push(Number(text((await peer.invoke('counter')).chunks)));
    expect(values[0]).toBeGreaterThanOrEqual(1);
    expect(values).toEqual([values[0], values[0] + 1, values[0] + 2]);
  });

  it('passes the headers as a JSON object with lower-case names', async () => {
    const result = await peer.invoke('headers', '', { headers: { 'X-Trace': 'abc', 'cocaine-attempt': '2', quote: 'a"b\u00e9' } });
    expect(JSON.parse(text(result.chunks))).toEqual({ 'x-trace': 'abc', 'cocaine-attempt': '2', quote: 'a"b\u00e9' });
    expect(text((await peer.invoke('headers')).chunks)).toBe('{}');
  });

  it('runs calls one at a time, in order, even when they arrive together', async () => {
    const started = Date.now();
    const results = await Promise.all([peer.invoke('concurrent'), peer.invoke('counter'), peer.invoke('concurrent')]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect(results.map((result) => result.error)).toEqual([undefined, undefined, undefined]);
    expect(text(results[0].chunks)).toBe('done');
    expect(text(results[2].chunks)).toBe('done');
  });

  it('keeps heartbeating while a handler runs for long (1.5 s)', async () => {
    const before = peer.heartbeats;
    const started = Date.now();
    const result = await peer.invoke('sleep', '1500');
    expect(text(result.chunks)).toBe('slept');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    // Every 50 ms for 1.5 s (30): allow for a loaded machine, but a blocked event loop sends none.
    expect(peer.heartbeats - before).toBeGreaterThanOrEqual(15);
  });

  it('stops a cancelled handler early: its next write reports the cancellation', async () => {
    const started = Date.now();
    const stream = peer.invokeStream('sleep');
    stream.write('5000');
    stream.end();
    await sleep(100);
    peer.cancel(stream.channel);
    await until('the handler to notice', () => peer.stderr.includes('sleep cancelled'), 2_000);
    const after = await peer.invoke('echo', 'alive');
    expect(text(after.chunks)).toBe('alive');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("captures the app's stdout and stderr", async () => {
    const result = await peer.invoke('log');
    expect(text(result.chunks)).toBe('ok');
    await until('both lines', () => peer.stdout.includes('hello stdout') && peer.stderr.includes('hello stderr'));
  });
});

describe('native host: one write larger than a frame', () => {
  it('splits it into chunks of at most 64 MiB, in order', async () => {
    const peer = await start('one-write.so');
    await peer.handshake;
    const size = 64 * 1024 * 1024 + 1000;
    // The body is NUL-terminated for strtoul by the trailing zero byte.
    const result = await peer.invoke('any', Buffer.from(`${size}\0`));
    expect(result.error).toBeUndefined();
    expect(result.chunks.map((chunk) => chunk.length)).toEqual([64 * 1024 * 1024, 1000]);
    const last = result.chunks[1];
    expect(last[999]).toBe((size - 1) % 251);
    expect(result.chunks[0][64 * 1024 * 1024 - 1]).toBe((64 * 1024 * 1024 - 1) % 251);
  }, 30_000);
});

describe('native host: crashes and stops', () => {
  it('dies with SIGSEGV when the app dereferences NULL; its stderr is captured', async () => {
    const peer = await start();
    await peer.handshake;
    const result = await peer.invoke('segv');
    expect(result.error?.code).toBe('internal');
    expect(await peer.exited).toEqual({ code: null, signal: 'SIGSEGV' });
    expect(peer.stderr).toContain('native-echo: init for app test-app');
    expect(peer.stderr).toContain('about to dereference NULL');
  });

  it('exits with the code the app passes to _exit, after its last words', async () => {
    const peer = await start();
    await peer.handshake;
    await peer.invoke('crash');
    expect(await peer.exited).toEqual({ code: 3, signal: null });
    expect(peer.stderr).toContain('about to crash');
  });

  it('stops heartbeating when the app stops the process (SIGSTOP)', async () => {
    const peer = await start('echo.so', { heartbeatMs: 30 });
    await peer.handshake;
    await until('heartbeats', () => peer.heartbeats >= 2);
    void peer.invoke('hang');
    await until('the process to stop', () => readFileSync(`/proc/${peer.pid}/stat`, 'utf8').split(') ')[1]?.startsWith('T') ?? false);
    const stopped = peer.heartbeats;
    await sleep(300);
    expect(peer.heartbeats).toBe(stopped);
    peer.kill();
    expect((await peer.exited).signal).toBe('SIGKILL');
  });

  it('calls cocaine_shutdown on TERMINATE and exits 0', async () => {
    const peer = await start();
    await peer.handshake;
    await peer.invoke('echo', 'x');
    peer.terminate(0, 'test');
    expect(await peer.exited).toEqual({ code: 0, signal: null });
    expect(peer.stderr).toContain('native-echo: shutdown after 1 calls');
  });

  it('cancels a running handler on TERMINATE, then shuts down', async () => {
    const peer = await start();
    await peer.handshake;
    const stream = peer.invokeStream('sleep');
    stream.write('10000');
    stream.end();
    await sleep(100);
    const started = Date.now();
    peer.terminate(0, 'test');
    expect(await peer.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(peer.stderr).toContain('sleep cancelled');
    expect(peer.stderr).toContain('native-echo: shutdown after 1 calls');
  });

  it('exits when the engine goes away', async () => {
    const peer = await start();
    await peer.handshake;
    peer.closeSocket();
    expect((await peer.exited).code).toBe(0);
  });
});

describe('native host: broken apps fail before the handshake', () => {
  async function refused(entrypoint: string): Promise<string> {
    const peer = await start(entrypoint);
    await expect(peer.handshake).rejects.toThrow(/before the handshake/);
    expect(await peer.exited).toEqual({ code: 1, signal: null });
    return peer.stderr.join('\n');
  }

  it('refuses an app built for another ABI version', async () => {
    const stderr = await refused('abi999.so');
    expect(stderr).toContain('abi999.so was built for native ABI 999, but this host speaks ABI 1');
  });

  it('refuses an app without cocaine_handle', async () => {
    expect(await refused('no-handle.so')).toContain('does not export cocaine_handle');
  });

  it('refuses a file that is not a shared object, and a missing one', async () => {
    expect(await refused('not-elf.so')).toContain('cannot load the shared object');
    expect(await refused('missing.so')).toContain('cannot load the shared object');
  });

  it("reports cocaine_init's refusal", async () => {
    expect(await refused('refuses.so')).toContain('cocaine_init refused to start: no database configured for test-app');
  });
});
