/**
 * Big results and slow engines, the same in every built-in runtime: a result piece larger than
 * one frame (64 MiB) goes out as several CHUNK frames, and a handler producing faster than the
 * engine reads is held back (the runtime does not buffer without bound).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FRAME_PAYLOAD } from '../../engine/protocol/frames.js';
import type { Peer } from '../helpers/protocol-peer.js';
import { RUNTIMES, startRuntime, text, until, writeApps, type AppSources, type RuntimeApps } from './runtimes.js';

/**
 * `big`: body N, answers N bytes (byte i = i % 251) as ONE piece (one return value or one write).
 * `flood`: writes 64 KiB chunks until cancelled, printing "produced <count>" every 16 chunks.
 */
const SOURCES: AppSources = {
  node: {
    entrypoint: 'index.js',
    source: `
export async function big(request) {
  const n = Number(await request.text());
  const data = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) data[i] = i % 251;
  return data;
}
export async function* flood(request) {
  const chunk = Buffer.alloc(65536, 1);
  for (let i = 1; !request.signal.aborted; i++) {
    yield chunk;
    if (i % 16 === 0) process.stderr.write('produced ' + i + '\\n');
  }
}
`,
  },
  python: {
    entrypoint: 'main.py',
    source: `
import sys

def big(request):
    n = int(request.text())
    return (bytes(range(251)) * (n // 251 + 1))[:n]

def flood(request):
    chunk = b"\\x01" * 65536
    i = 0
    while not request.cancelled.is_set():
        i += 1
        yield chunk
        if i % 16 == 0:
            print("produced %d" % i, file=sys.stderr)
`,
  },
  perl: {
    entrypoint: 'app.pl',
    source: `
use strict;
use warnings;
use Cocaine::Worker;
handler big => sub {
    my ($req) = @_;
    my $n = $req->body;
    return substr(join('', map { chr } 0 .. 250) x (int($n / 251) + 1), 0, $n);
};
handler flood => sub {
    my ($req, $res) = @_;
    my $chunk = "\\x01" x 65536;
    for (my $i = 1; ; $i++) {
        $res->write($chunk);
        print STDERR "produced $i\\n" unless $i % 16;
    }
};
`,
  },
  native: {
    entrypoint: 'app.so',
    source: `
#include <cocaine/worker.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int cocaine_abi_version(void) { return COCAINE_NATIVE_ABI_VERSION; }
int cocaine_handle(const cocaine_request *req, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  if (strcmp(req->event, "big") == 0) {
    char text[32] = {0};
    memcpy(text, req->body, req->body_len < 31 ? req->body_len : 31);
    size_t n = strtoul(text, NULL, 10);
    uint8_t *data = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i % 251);
    write(ctx, data, n);
    free(data);
    return COCAINE_OK;
  }
  if (strcmp(req->event, "flood") == 0) {
    static uint8_t chunk[65536];
    memset(chunk, 1, sizeof chunk);
    for (long i = 1; ; i++) {
      if (write(ctx, chunk, sizeof chunk) == COCAINE_CANCELLED) return COCAINE_OK;
      if (i % 16 == 0) { fprintf(stderr, "produced %ld\\n", i); fflush(stderr); }
    }
  }
  return COCAINE_NOT_FOUND;
}
`,
  },
};

let apps: RuntimeApps;
const peers: Peer[] = [];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  apps = await writeApps(SOURCES);
}, 120_000);

afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

afterAll(() => apps?.remove());

function produced(peer: Peer): number {
  const lines = peer.stderr.filter((line) => line.startsWith('produced '));
  return lines.length === 0 ? 0 : Number(lines[lines.length - 1].slice('produced '.length));
}

describe.each(RUNTIMES)('%s runtime: flow', (runtime) => {
  it('sends a result piece larger than one frame as several CHUNK frames, in order', async () => {
    const peer = await startRuntime(runtime, apps);
    peers.push(peer);
    const size = MAX_FRAME_PAYLOAD + 1000;
    const result = await peer.invoke('big', String(size));
    expect(result.error).toBeUndefined();
    expect(result.chunks.length).toBeGreaterThanOrEqual(2);
    for (const chunk of result.chunks) expect(chunk.length).toBeLessThanOrEqual(MAX_FRAME_PAYLOAD);
    const body = Buffer.concat(result.chunks);
    expect(body.length).toBe(size);
    for (const i of [0, 250, 251, MAX_FRAME_PAYLOAD - 1, MAX_FRAME_PAYLOAD, size - 1]) expect(body[i]).toBe(i % 251);
  }, 60_000);

  it('holds back a handler that produces faster than the engine reads, and goes on when it reads again', async () => {
    const peer = await startRuntime(runtime, apps, { heartbeatMs: 100, disownMs: 60_000 });
    peers.push(peer);
    await peer.handshake;
    peer.pauseReading();
    const stream = peer.invokeStream('flood');
    stream.end();
    // Unbounded, the handler would produce gigabytes in this time; held back, it stops after
    // the runtime's window (about 1 MiB) and the socket's buffers.
    await sleep(2_000);
    const held = produced(peer);
    await sleep(1_000);
    const stillHeld = produced(peer);
    expect(stillHeld * 64).toBeLessThan(16 * 1024); // KiB: under 16 MiB produced while nobody read
    expect(stillHeld - held).toBeLessThanOrEqual(16);
    peer.resumeReading();
    await until('the handler to go on once the engine reads', () => produced(peer) > stillHeld + 32);
    peer.cancel(stream.channel);
    const after = await peer.invoke('big', '10');
    expect(text(after.chunks).length).toBe(10);
  }, 60_000);
});
