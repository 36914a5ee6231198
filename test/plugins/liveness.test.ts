/**
 * The worker side of liveness and forward compatibility, the same rules in every built-in runtime
 * (docs/worker-protocol.md, "Liveness"): the disown clock starts once the engine has spoken, a
 * silent engine is still disowned after that, a long handler keeps the heartbeats going, unknown
 * control frames are ignored, and the engine's headers of queued events reach the handler.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FrameType, encodeFrame } from '../../engine/protocol/frames.js';
import type { Peer } from '../helpers/protocol-peer.js';
import { RUNTIMES, startRuntime, text, writeApps, type AppSources, type RuntimeApps } from './runtimes.js';

/** Events: `headers` answers "<cocaine-event-id> <cocaine-attempt>"; `wait` takes 1.2 s, then answers "waited". */
const SOURCES: AppSources = {
  node: {
    entrypoint: 'index.js',
    source: `
export function headers(request) { return request.headers['cocaine-event-id'] + ' ' + request.headers['cocaine-attempt']; }
export async function wait() { await new Promise((resolve) => setTimeout(resolve, 1200)); return 'waited'; }
`,
  },
  python: {
    entrypoint: 'main.py',
    source: `
def headers(request):
    return "%s %s" % (request.headers["cocaine-event-id"], request.headers["cocaine-attempt"])

def wait(request):
    request.cancelled.wait(1.2)
    return "waited"
`,
  },
  perl: {
    entrypoint: 'app.pl',
    source: `
use strict;
use warnings;
use Cocaine::Worker;
handler headers => sub { my ($req) = @_; return "$req->{headers}{'cocaine-event-id'} $req->{headers}{'cocaine-attempt'}" };
handler wait => sub { my ($req) = @_; $req->sleep(1.2); return 'waited' };
handler nap => sub { my $slept = sleep 1; return "napped $slept" };
`,
  },
  native: {
    entrypoint: 'app.so',
    source: `
#include <cocaine/worker.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
int cocaine_abi_version(void) { return COCAINE_NATIVE_ABI_VERSION; }
int cocaine_handle(const cocaine_request *req, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  if (strcmp(req->event, "headers") == 0) {
    /* The test's headers arrive as {"cocaine-event-id":"...","cocaine-attempt":"..."}. */
    write(ctx, (const uint8_t *)req->headers_json, strlen(req->headers_json));
    return COCAINE_OK;
  }
  if (strcmp(req->event, "wait") == 0) {
    for (int i = 0; i < 24; i++) {
      struct timespec pause = {0, 50000000};
      nanosleep(&pause, NULL);
      if (write(ctx, NULL, 0) == COCAINE_CANCELLED) return COCAINE_OK;
    }
    write(ctx, (const uint8_t *)"waited", 6);
    return COCAINE_OK;
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

describe.each(RUNTIMES)('%s runtime: liveness', (runtime) => {
  async function start(options: Parameters<typeof startRuntime>[2] = {}): Promise<Peer> {
    const peer = await startRuntime(runtime, apps, options);
    peers.push(peer);
    await peer.handshake;
    return peer;
  }

  it('waits for an engine that has not spoken yet (slow to accept the handshake), and exits 0 when its socket closes', async () => {
    const peer = await start({ heartbeatMs: 50, disownMs: 300, answerHeartbeats: false });
    let exited = false;
    void peer.exited.then(() => (exited = true));
    // Five disown periods of an engine that has not read the handshake yet.
    await sleep(1500);
    expect(exited, peer.stderr.join('\n')).toBe(false);
    expect(peer.heartbeats).toBeGreaterThan(0);
    peer.closeSocket();
    expect(await peer.exited).toEqual({ code: 0, signal: null });
  }, 20_000);

  it('exits 2 after COCAINE_DISOWN_MS of silence once the engine has spoken', async () => {
    const peer = await start({ heartbeatMs: 50, disownMs: 300, answerHeartbeats: false });
    peer.sendRaw(encodeFrame(FrameType.HEARTBEAT, 0));
    const started = Date.now();
    const exit = await peer.exited;
    expect(exit.code).toBe(2);
    // Detects a hang, not speed: 300 ms of silence plus a busy machine.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(peer.stderr.join('\n')).toMatch(/nothing from the engine for 300 ms/);
  }, 20_000);

  it('keeps heartbeating through a handler that runs longer than the heartbeat timeout', async () => {
    const peer = await start({ heartbeatMs: 50, disownMs: 2_000 });
    const call = peer.invoke('wait');
    // Wait until the call runs, then count the heartbeats of one 0.6 s window in the middle of it.
    await sleep(300);
    const before = peer.heartbeats;
    await sleep(600);
    const during = peer.heartbeats - before;
    const result = await call;
    expect(result.error).toBeUndefined();
    expect(text(result.chunks)).toBe('waited');
    // One every 50 ms is 12; a worker silent for its whole handler would send none.
    expect(during).toBeGreaterThanOrEqual(3);
  }, 20_000);

  it('ignores unknown frame types on channel 0, and passes the headers of a queued event to the handler', async () => {
    const peer = await start();
    peer.sendRaw(encodeFrame(42, 0, Buffer.from('{"from":"a future engine"}')));
    peer.sendRaw(encodeFrame(200, 0));
    const result = await peer.invoke('headers', '', { headers: { 'cocaine-event-id': 'ev-7', 'cocaine-attempt': '2' } });
    expect(result.error).toBeUndefined();
    const answer = text(result.chunks);
    if (runtime === 'native') expect(JSON.parse(answer)).toEqual({ 'cocaine-event-id': 'ev-7', 'cocaine-attempt': '2' });
    else expect(answer).toBe('ev-7 2');
  }, 20_000);
});

describe("perl runtime: the app's own sleep", () => {
  it('keeps heartbeating through `sleep 1` in a handler, and sleeps the whole second', async () => {
    const peer = await startRuntime('perl', apps, { heartbeatMs: 50 });
    peers.push(peer);
    await peer.handshake;
    const started = Date.now();
    const call = peer.invoke('nap');
    await sleep(200);
    const before = peer.heartbeats;
    await sleep(600);
    const during = peer.heartbeats - before;
    const result = await call;
    expect(text(result.chunks)).toBe('napped 1');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    // CORE::sleep would send none in this window.
    expect(during).toBeGreaterThanOrEqual(3);
  }, 20_000);
});
