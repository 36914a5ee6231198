/**
 * The Perl runtime (plugins/perl/runtime) through the engine-side protocol peer, with the
 * conformance app and a fixture app for the rest of the API.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../engine/util/paths.js';
import perlPlugin from '../../plugins/perl/index.js';
import { resolveInterpreter } from '../../plugins/resolve-interpreter.js';
import { FrameType, encodeFrame } from '../../engine/protocol/frames.js';
import { startPeer, type Peer, type PeerOptions } from '../helpers/protocol-peer.js';

const CONFORMANCE = join(packageRoot(), 'examples', 'perl-conformance');

const FIXTURE = `
use strict;
use warnings;
use Time::HiRes ();
use Cocaine::Worker qw(handler heartbeat);

handler info => sub {
    my ($req) = @_;
    return { event => $req->event, headers => $req->headers, body => $req->body };
};
handler chunks => sub { return ['a', 'b', 'c'] };
handler nothing => sub { return };
handler writes => sub {
    my ($req, $res) = @_;
    $res->write('one')->write('two');
};
handler json => sub { my ($req) = @_; return { doubled => $req->json->{n} * 2 } };
handler unicode => sub { return "caf\\x{e9} \\x{263a}" };
handler tally => sub {
    my ($req) = @_;
    my ($bytes, $count) = (0, 0);
    $req->each_chunk(sub { $bytes += length $_[0]; $count++ });
    return "$bytes/$count";
};
handler endless => sub {
    my ($req, $res) = @_;
    my $ok = eval { $res->write('x') while 1; 1 };
    print STDERR "writes stopped: ", ($req->cancelled // 'no'), "\\n";
    die $@ unless $ok;
};
handler busy => sub {
    # Computes for 0.6 s without reading or writing: heartbeat() keeps the worker alive.
    my $until = Time::HiRes::time() + 0.6;
    while (Time::HiRes::time() < $until) { my $x = 0; $x += $_ for 1 .. 10_000; heartbeat() }
    return 'done';
};
handler badref => sub { return \\1 };
handler parts => sub {
    my ($req) = @_;
    my $chunks = $req->chunks;
    return join('|', @$chunks) . ' = ' . $req->body . ' (' . scalar(@$chunks) . ')';
};
handler streamed_then_body => sub {
    my ($req) = @_;
    $req->each_chunk(sub {});
    return $req->body;
};
handler nap => sub {
    my ($req) = @_;
    my $code = $req->sleep(5);
    print STDERR "nap: ", ($code // 'full'), "\n";
    return;
};
`;

let perl: string;
let fixtureDir: string;
const peers: Peer[] = [];

beforeAll(() => {
  perl = resolveInterpreter('perl');
  fixtureDir = mkdtempSync(join(tmpdir(), 'perl-runtime-app-'));
  writeFileSync(join(fixtureDir, 'app.pl'), FIXTURE);
  writeFileSync(join(fixtureDir, 'broken.pl'), 'use strict;\nsub x {\n');
  writeFileSync(join(fixtureDir, 'throws.pl'), 'die "init failed here\\n";\n');
  writeFileSync(join(fixtureDir, 'empty.pl'), 'my $x = 1;\n');
});

afterAll(() => rmSync(fixtureDir, { recursive: true, force: true }));

afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

async function worker(options: Partial<PeerOptions> = {}): Promise<Peer> {
  const spec = perlPlugin.launch({
    app: 'test-app',
    workerId: 'unused',
    entrypoint: 'app.pl',
    appDir: options.cwd ?? CONFORMANCE,
    endpoint: 'unused',
    pluginDir: perlPlugin.runtimeDir,
    environment: {},
    placement: 'host',
  });
  const peer = await startPeer({ command: spec.command, args: spec.args, cwd: CONFORMANCE, entrypoint: 'app.pl', ...options, env: { ...spec.env, ...options.env } });
  peers.push(peer);
  return peer;
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString();

describe('perl runtime: the conformance events', () => {
  it('handshakes with its id, pid, concurrency 1 and the events', async () => {
    const peer = await worker();
    const handshake = await peer.handshake;
    expect(handshake).toMatchObject({ protocol: 2, worker: peer.workerId, pid: peer.pid, concurrency: 1 });
    expect(handshake.runtime).toMatch(/^perl 5\.\d+\.\d+$/);
    expect(handshake.events).toEqual(['big', 'concurrent', 'counter', 'crash', 'echo', 'emit', 'fail', 'hang', 'headers', 'kv', 'log', 'note', 'relay', 'sleep', 'stream', 'upper']);
  });

  it('echoes all 256 byte values', async () => {
    const peer = await worker();
    const body = Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256));
    const { chunks, error } = await peer.invoke('echo', body);
    expect(error).toBeUndefined();
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
  });

  it('streams 1,000 chunks in order, one frame each', async () => {
    const peer = await worker();
    const { chunks, error } = await peer.invoke('stream', '1000');
    expect(error).toBeUndefined();
    expect(chunks.map(String)).toEqual(Array.from({ length: 1000 }, (_, i) => String(i)));
  });

  it('reads the body as it arrives and answers before it ends', async () => {
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
  });

  it('moves 16 MiB each way', async () => {
    const peer = await worker();
    const size = 16 * 1024 * 1024;
    const big = await peer.invoke('big', String(size));
    expect(big.error).toBeUndefined();
    const body = Buffer.concat(big.chunks);
    expect(body.length).toBe(size);
    for (const i of [0, 1, 250, 251, 1_000_003, size - 1]) expect(body[i]).toBe(i % 251);
    const echoed = await peer.invoke('echo', [body.subarray(0, size / 2), body.subarray(size / 2)]);
    expect(echoed.error).toBeUndefined();
    expect(Buffer.concat(echoed.chunks).equals(body)).toBe(true);
  });

  it("reports a handler's die message, and keeps serving", async () => {
    const peer = await worker();
    expect((await peer.invoke('fail', 'xyz')).error).toEqual({ code: 'handler', message: 'boom: xyz' });
    expect(text((await peer.invoke('echo', 'still here')).chunks)).toBe('still here');
  });

  it('answers an unknown event with not_found', async () => {
    const peer = await worker();
    const { error } = await peer.invoke('no-such-event');
    expect(error).toEqual({ code: 'not_found', message: "no handler for event 'no-such-event'" });
  });

  it('keeps module state across calls', async () => {
    const peer = await worker();
    const values = [];
    for (let i = 0; i < 3; i++) values.push(text((await peer.invoke('counter')).chunks));
    expect(values).toEqual(['1', '2', '3']);
  });

  it('runs calls one at a time, as declared', async () => {
    const peer = await worker();
    await peer.handshake;
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => peer.invoke(i % 2 ? 'concurrent' : 'counter')));
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect(results.map((result) => text(result.chunks))).toEqual(['1', 'done', '2', 'done', '3']);
  });

  it('stops a sleep early on cancel and sends nothing more on the channel', async () => {
    const peer = await worker();
    await peer.handshake;
    const stream = peer.invokeStream('sleep');
    stream.write('5000');
    stream.end();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    peer.cancel(stream.channel, 'deadline');
    // The next call is answered only once the cancelled one stopped (one call at a time).
    expect(await peer.invoke('echo', 'next')).toEqual({ chunks: [Buffer.from('next')] });
    expect(Date.now() - started).toBeLessThan(1000);
    await waitFor(() => peer.stderr.includes('sleep cancelled (deadline)'));
  });

  it('never runs a call cancelled before its handler started', async () => {
    const peer = await worker();
    await peer.handshake;
    // The worker is busy for 200 ms: the second call's INVOKE and its cancel wait in the socket.
    const busy = peer.invoke('concurrent');
    const cancelled = peer.invokeStream('counter');
    cancelled.end();
    peer.cancel(cancelled.channel);
    expect(text((await busy).chunks)).toBe('done');
    expect(text((await peer.invoke('counter')).chunks)).toBe('1');
  });

  it("keeps the app's stdout and stderr out of the protocol", async () => {
    const peer = await worker();
    expect(await peer.invoke('log')).toEqual({ chunks: [Buffer.from('ok')] });
    await waitFor(() => peer.stdout.includes('hello stdout') && peer.stderr.includes('hello stderr'));
  });
});

describe('perl runtime: process lifecycle', () => {
  it('exits with the code of a crashing handler, after its stderr line', async () => {
    const peer = await worker();
    const result = await peer.invoke('crash');
    expect(result.error?.code).toBe('internal');
    expect(await peer.exited).toEqual({ code: 3, signal: null });
    expect(peer.stderr).toContain('about to crash');
  });

  it('stops heartbeating when the process is stopped (hang)', async () => {
    const peer = await worker({ heartbeatMs: 50 });
    await peer.handshake;
    void peer.invoke('hang');
    await waitFor(() => procState(peer.pid) === 'T');
    const before = peer.heartbeats;
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(peer.heartbeats - before).toBeLessThanOrEqual(1);
    peer.kill();
    expect((await peer.exited).signal).toBe('SIGKILL');
  });

  it('heartbeats every COCAINE_HEARTBEAT_MS, idle and while a handler waits', async () => {
    const peer = await worker({ heartbeatMs: 40 });
    await peer.handshake;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(peer.heartbeats).toBeGreaterThanOrEqual(3);
    const before = peer.heartbeats;
    await peer.invoke('sleep', '400');
    expect(peer.heartbeats - before).toBeGreaterThanOrEqual(5);
  });

  it('exits 0 on TERMINATE, also in the middle of a call', async () => {
    const peer = await worker();
    await peer.handshake;
    void peer.invoke('sleep', '5000');
    await new Promise((resolve) => setTimeout(resolve, 50));
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
    expect((await peer.exited).code).toBe(2);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(peer.stderr.join('\n')).toContain('nothing from the engine for 300 ms');
  });

  it('fails at start, before the handshake, with the error, when the app cannot load', async () => {
    for (const entrypoint of ['broken.pl', 'throws.pl', 'missing.pl', 'empty.pl']) {
      const peer = await worker({ cwd: fixtureDir, entrypoint });
      await expect(peer.handshake).rejects.toThrow(/before the handshake/);
      expect((await peer.exited).code).toBe(1);
      const stderr = peer.stderr.join('\n');
      if (entrypoint === 'empty.pl') {
        expect(stderr).toContain('registers no handlers');
        continue;
      }
      expect(stderr).toContain(`cannot load the entrypoint ${entrypoint}`);
      if (entrypoint === 'broken.pl') expect(stderr).toMatch(/Missing right curly[\s\S]*broken\.pl line \d/);
      if (entrypoint === 'throws.pl') expect(stderr).toContain('init failed here');
      if (entrypoint === 'missing.pl') expect(stderr).toContain('no such file');
    }
  });
});

describe('perl runtime: the app API beyond the conformance events', () => {
  it('returns hashes as JSON, array refs as chunks, nothing, and writes through $res', async () => {
    const peer = await worker({ cwd: fixtureDir });
    const headers = { 'x-trace': 'a"b\\c\n', 'x-unicode': 'café ☺ 😀' };
    const info = await peer.invoke('info', 'body', { headers });
    expect(JSON.parse(text(info.chunks))).toEqual({ event: 'info', headers, body: 'body' });
    expect((await peer.invoke('chunks')).chunks.map(String)).toEqual(['a', 'b', 'c']);
    expect(await peer.invoke('nothing')).toEqual({ chunks: [] });
    // The handler's value (the $res that write returns) is not sent.
    expect((await peer.invoke('writes')).chunks.map(String)).toEqual(['one', 'two']);
    expect(JSON.parse(text((await peer.invoke('json', '{"n":21}')).chunks))).toEqual({ doubled: 42 });
    expect(text((await peer.invoke('unicode')).chunks)).toBe('café ☺');
    expect(text((await peer.invoke('tally', ['a', 'bb', 'ccc'])).chunks)).toBe('6/3');
  });

  it('keeps the body chunks as received, and joins them for body', async () => {
    const peer = await worker({ cwd: fixtureDir });
    expect(text((await peer.invoke('parts', ['ab', '', 'c\u0000d', 'ef'])).chunks)).toBe('ab||c\u0000d|ef = abc\u0000def (4)');
    expect(text((await peer.invoke('parts')).chunks)).toBe(' =  (0)');
    const { error } = await peer.invoke('streamed_then_body', ['x', 'y']);
    expect(error).toEqual({ code: 'handler', message: 'the body was already read by each_chunk: chunks and body are not kept then' });
  });

  it('$req->sleep returns the cancel code early', async () => {
    const peer = await worker({ cwd: fixtureDir });
    await peer.handshake;
    const stream = peer.invokeStream('nap');
    stream.end();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    peer.cancel(stream.channel);
    await waitFor(() => peer.stderr.includes('nap: cancelled'));
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('stops a handler that writes forever once cancelled', async () => {
    const peer = await worker({ cwd: fixtureDir });
    const stream = peer.invokeStream('endless');
    stream.end();
    let seen = 0;
    for await (const _ of stream.chunks) if (++seen === 5) break;
    peer.cancel(stream.channel);
    await waitFor(() => peer.stderr.includes('writes stopped: cancelled'));
    expect(text((await peer.invoke('chunks')).chunks)).toBe('abc');
  });

  it('heartbeats from heartbeat() inside a long handler', async () => {
    const peer = await worker({ cwd: fixtureDir, heartbeatMs: 50 });
    await peer.handshake;
    const before = peer.heartbeats;
    expect(text((await peer.invoke('busy')).chunks)).toBe('done');
    expect(peer.heartbeats - before).toBeGreaterThanOrEqual(8);
  });

  it('fails a call whose handler returns an unsupported value', async () => {
    const peer = await worker({ cwd: fixtureDir });
    const { error } = await peer.invoke('badref');
    expect(error?.code).toBe('handler');
    expect(error?.message).toContain('not a SCALAR ref');
  });
});

describe('perl runtime: cold start', () => {
  it('handshakes within a few tens of ms of the bare interpreter start', async () => {
    const bare: number[] = [];
    const handshakes: number[] = [];
    for (let i = 0; i < 5; i++) {
      bare.push(await firstOutputMs(perl, ['-e', 'print 1']));
      const peer = await worker();
      await peer.handshake;
      handshakes.push(peer.timing.handshakeMs!);
      await peer.close();
      peers.splice(peers.indexOf(peer), 1);
    }
    const bareMs = median(bare);
    const handshakeMs = median(handshakes);
    console.log(`perl cold start: spawn→handshake ${handshakeMs.toFixed(1)} ms (median of 5); bare ${perl} -e 'print 1' spawn→first output ${bareMs.toFixed(1)} ms`);
    expect(handshakeMs).toBeLessThan(bareMs + 100);
  });
});

/** Milliseconds from spawn to the first byte on stdout. */
function firstOutputMs(command: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    child.once('error', reject);
    child.stdout.once('data', () => resolve(performance.now() - started));
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function procState(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
  } catch {
    return undefined;
  }
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
