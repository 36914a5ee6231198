/**
 * A handler that returns (or streams) something that is not data fails its own call with a
 * handler error naming the type; the worker and the calls it runs meanwhile are unharmed. One
 * case per built-in runtime, through the real runtime under the protocol peer.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Peer } from '../helpers/protocol-peer.js';
import { RUNTIMES, startRuntime, text, writeApps, type AppSources, type RuntimeApps, type RuntimeName } from './runtimes.js';

const SOURCES: AppSources = {
  node: {
    entrypoint: 'index.js',
    source: `
export function slow() { return new Promise((resolve) => setTimeout(() => resolve('slow done'), 400)); }
export function fn() { return function helper() {}; }
export async function sym() { return Symbol('s'); }
export function noJson() { return { toJSON() { return undefined; } }; }
export function throwsNull() { throw Object.create(null); }
export function* badChunk() { yield 'ok'; yield { a: 1 }; }
`,
  },
  python: {
    entrypoint: 'main.py',
    source: `
import array, time

class Thing:
    pass

def slow(request):
    time.sleep(0.4)
    return "slow done"

def obj(request):
    return Thing()

def fn(request):
    return lambda: 1

def bad_yield(request):
    yield b"ok"
    yield {"a": 1}

def ints(request):
    return memoryview(array.array("i", [1, 2, 3]))

class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")

def unprintable(request):
    raise Unprintable()
`,
  },
  perl: {
    entrypoint: 'app.pl',
    source: `
use strict;
use warnings;
use Cocaine::Worker;
handler slow => sub { my ($req) = @_; $req->sleep(0.4); return 'slow done' };
handler obj => sub { return bless {}, 'Some::Thing' };
handler hash_chunk => sub { my $n = 0; return sub { $n++; return $n == 1 ? 'ok' : $n == 2 ? { a => 1 } : undef } };
handler code_in_array => sub { return ['ok', sub { 1 }] };
handler glob => sub { return \\*STDOUT };
`,
  },
  native: {
    entrypoint: 'app.so',
    source: `
#include <cocaine/worker.h>
#include <string.h>
#include <time.h>
int cocaine_abi_version(void) { return COCAINE_NATIVE_ABI_VERSION; }
int cocaine_handle(const cocaine_request *req, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  if (strcmp(req->event, "slow") == 0) {
    struct timespec pause = {0, 400000000};
    nanosleep(&pause, NULL);
    write(ctx, (const uint8_t *)"slow done", 9);
    return COCAINE_OK;
  }
  if (strcmp(req->event, "null_write") == 0) {
    write(ctx, (const uint8_t *)"ok", 2);
    if (write(ctx, NULL, 5) != COCAINE_CANCELLED) return 7;
    return COCAINE_OK;
  }
  if (strcmp(req->event, "negative_length") == 0) {
    int length = -1;
    write(ctx, (const uint8_t *)"x", (size_t)length);
    return COCAINE_OK;
  }
  return COCAINE_NOT_FOUND;
}
`,
  },
};

interface BadCase {
  event: string;
  /** Chunks sent before the failure. */
  chunks?: string[];
  message: RegExp;
}

const CASES: Record<RuntimeName, BadCase[]> = {
  node: [
    { event: 'fn', message: /got a function \(helper\)/ },
    { event: 'sym', message: /got a symbol/ },
    { event: 'noJson', message: /got an object \(Object\)/ },
    { event: 'throwsNull', message: /threw an object/ },
    { event: 'badChunk', chunks: ['ok'], message: /got an object \(Object\)/ },
  ],
  python: [
    { event: 'obj', message: /got main\.Thing/ },
    { event: 'fn', message: /got function/ },
    { event: 'bad_yield', chunks: ['ok'], message: /got dict/ },
    { event: 'unprintable', message: /^Unprintable \(its message could not be read\)$/ },
  ],
  perl: [
    { event: 'obj', message: /not a Some::Thing ref/ },
    { event: 'hash_chunk', chunks: ['ok'], message: /not a HASH ref/ },
    { event: 'code_in_array', chunks: ['ok'], message: /not a CODE ref/ },
    { event: 'glob', message: /not a GLOB ref/ },
  ],
  native: [
    { event: 'null_write', chunks: ['ok'], message: /write\(ctx, NULL, 5\): data is NULL/ },
    { event: 'negative_length', message: /write\(ctx, data, 18446744073709551615\): a length above/ },
  ],
};

let apps: RuntimeApps;
const peers: Peer[] = [];

beforeAll(async () => {
  apps = await writeApps(SOURCES);
}, 120_000);

afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

afterAll(() => apps?.remove());

describe.each(RUNTIMES)('%s runtime: a result that is not data', (runtime) => {
  it('fails only its own call, with a handler error naming the type, while another call on the worker completes', async () => {
    const peer = await startRuntime(runtime, apps);
    peers.push(peer);
    await peer.handshake;
    const slow = peer.invoke('slow');
    const results = await Promise.all(CASES[runtime].map((bad) => peer.invoke(bad.event)));
    results.forEach((result, i) => {
      const bad = CASES[runtime][i];
      expect(result.error?.code, bad.event).toBe('handler');
      expect(result.error?.message, bad.event).toMatch(bad.message);
      expect(result.chunks.map(String), bad.event).toEqual(bad.chunks ?? []);
    });
    const concurrent = await slow;
    expect(concurrent.error).toBeUndefined();
    expect(text(concurrent.chunks)).toBe('slow done');
    // The same worker process serves on.
    const after = await peer.invoke('slow');
    expect(text(after.chunks)).toBe('slow done');
    expect(peer.stderr.join('\n')).not.toMatch(/Traceback|TypeError \[|uncaught/i);
  }, 30_000);
});

describe('python runtime: a memoryview of wider items', () => {
  it('is sent as its bytes (a frame length counting items broke the stream)', async () => {
    const peer = await startRuntime('python', apps);
    peers.push(peer);
    const result = await peer.invoke('ints');
    expect(result.error).toBeUndefined();
    const expected = Buffer.alloc(12);
    [1, 2, 3].forEach((value, i) => expected.writeInt32LE(value, i * 4));
    expect(Buffer.concat(result.chunks).equals(expected)).toBe(true);
    expect(text((await peer.invoke('slow')).chunks)).toBe('slow done');
  }, 30_000);
});
