/**
 * The direct checks: the kit plays the engine on a private socket and watches one runtime
 * process, so it sees what a real engine hides (its SIGKILL after termination-timeout, frames it
 * drops on cancelled channels, a frame over 64 MiB it kills the worker for).
 */
import { FrameType, MAX_FRAME_PAYLOAD, type HandshakePayload } from '../../engine/protocol/frames.js';
import { DIRECT_HEARTBEAT_MS, type KitContext } from './context.js';
import type { Check } from './check.js';
import type { KitPeer, KitChannel } from './peer.js';

const FRAME_NAMES: Record<number, string> = { 1: 'HANDSHAKE', 2: 'HEARTBEAT', 3: 'TERMINATE', 4: 'INVOKE', 5: 'CHUNK', 6: 'END', 7: 'ERROR' };
export const frameName = (type: number): string => FRAME_NAMES[type] ?? `unknown type ${type}`;

function fail(message: string): never {
  throw new Error(message);
}

const tail = (lines: string[], n = 5): string => (lines.length ? lines.slice(-n).join(' | ') : '(nothing)');

function describeExit(peer: KitPeer): string {
  return `exited (code ${peer.exit?.code}, signal ${peer.exit?.signal}); stderr: ${tail(peer.stderr)}`;
}

/** Waits for a channel to finish; fails naming the event if it does not within `ms`. */
async function finished(peer: KitPeer, channel: KitChannel, what: string, ms: number): Promise<Awaited<KitChannel['done']>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  const result = await Promise.race([channel.done, timeout]);
  clearTimeout(timer);
  if (!result) fail(`${what}: no END or ERROR within ${ms / 1000}s`);
  if (result.gone) {
    await peer.exitWithin(2_000); // the socket closes just before the exit is reaped
    fail(`${what}: ${peer.exit ? `the worker ${describeExit(peer)}` : result.gone}`);
  }
  return result;
}

async function bodyOf(peer: KitPeer, channel: KitChannel, what: string, ms: number): Promise<Buffer> {
  const result = await finished(peer, channel, what, ms);
  if (result.error) fail(`${what}: answered ERROR ${JSON.stringify(result.error)}`);
  return Buffer.concat(channel.chunks);
}

/** Byte i of the `big` event's result. */
const pattern = (i: number) => i % 251;

function checkPattern(body: Buffer, size: number, what: string): void {
  if (body.length !== size) fail(`${what}: got ${body.length} bytes, expected ${size}`);
  for (let i = 0; i < size; i++) {
    if (body[i] !== pattern(i)) fail(`${what}: byte ${i} is ${body[i]}, expected ${pattern(i)} (bytes lost or reordered)`);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(probe: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

function validateHandshake(kit: KitContext, peer: KitPeer): HandshakePayload {
  const first = peer.firstFrame!;
  if (first.type !== FrameType.HANDSHAKE || first.channel !== 0) {
    fail(`the first frame was ${frameName(first.type)} on channel ${first.channel}, not HANDSHAKE on channel 0`);
  }
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(peer.handshakeText ?? '') as Record<string, unknown>;
  } catch {
    fail(`the HANDSHAKE payload is not JSON: ${JSON.stringify(peer.handshakeText?.slice(0, 200))}`);
  }
  const problems: string[] = [];
  if (value.protocol !== 1) problems.push(`"protocol" is ${JSON.stringify(value.protocol)}, expected 1`);
  if (value.worker !== peer.workerId) problems.push(`"worker" is ${JSON.stringify(value.worker)}, expected COCAINE_WORKER_ID ${peer.workerId}`);
  if (!Number.isInteger(value.pid) || (value.pid as number) <= 0) problems.push(`"pid" is ${JSON.stringify(value.pid)}, expected the process id`);
  if (typeof value.runtime !== 'string' || value.runtime === '') problems.push(`"runtime" is ${JSON.stringify(value.runtime)}, expected e.g. "ruby 3.1"`);
  if (!Number.isInteger(value.concurrency) || (value.concurrency as number) < 0) {
    problems.push(`"concurrency" is ${JSON.stringify(value.concurrency)}, expected 0 (parallel) or N ≥ 1`);
  }
  if (value.events !== undefined && !(Array.isArray(value.events) && value.events.every((event) => typeof event === 'string'))) {
    problems.push(`"events" is ${JSON.stringify(value.events)}, expected a list of event names (or no field)`);
  }
  const expected = kit.options.sessions;
  if (expected && problems.length === 0) {
    const serial = value.concurrency === 1;
    if ((expected === 'serial') !== serial) problems.push(`"concurrency" is ${String(value.concurrency)}, but this plugin is expected to run sessions ${expected === 'serial' ? 'one at a time (1)' : 'in parallel (0)'}`);
  }
  if (problems.length) fail(`invalid HANDSHAKE ${peer.handshakeText}: ${problems.join('; ')}`);
  return value as unknown as HandshakePayload;
}

export const runtimeChecks: Check[] = [
  {
    group: 'handshake',
    name: 'sends a valid HANDSHAKE first: protocol 1, its worker id, pid, runtime, concurrency, events',
    timeoutMs: 30_000,
    async run(kit) {
      const peer = await kit.sharedWorker();
      if (!(await peer.firstFrameWithin(kit.startupMs))) {
        await peer.exitWithin(2_000); // the socket may close just before the exit is reaped
        fail(peer.alive ? `no HANDSHAKE within the startup-timeout of ${kit.startupMs / 1000}s; stderr: ${tail(peer.stderr)}` : `the worker ${describeExit(peer)} before its handshake`);
      }
      kit.handshake = validateHandshake(kit, peer);
    },
  },
  {
    group: 'lifecycle',
    name: 'exits 1 before its handshake when the app cannot be loaded, with the error on stderr',
    timeoutMs: 40_000,
    async run(kit) {
      const entrypoint = kit.missingEntrypoint();
      const peer = await kit.launch({ entrypoint });
      try {
        // Whichever comes first: the exit, or a frame (which must never come).
        await Promise.race([peer.exitWithin(kit.startupMs), peer.firstFrameWithin(kit.startupMs)]);
        const exit = peer.firstFrame ? undefined : await peer.exitWithin(2_000);
        if (peer.firstFrame) fail(`it sent ${frameName(peer.firstFrame.type)} although its entrypoint ${entrypoint} does not exist: a broken app must fail at start, not serve`);
        if (!exit) fail(`still running ${kit.startupMs / 1000}s after failing to load ${entrypoint}: it must exit 1`);
        if (exit.code !== 1) fail(`exited with code ${exit.code} (signal ${exit.signal}), expected 1`);
        if (peer.stderr.join('').trim() === '') fail('exited 1 but wrote nothing to stderr: the user needs the reason');
      } finally {
        await kit.release(peer);
      }
    },
  },
  {
    group: 'lifecycle',
    name: 'exits 0 on its own after TERMINATE (before the engine would SIGKILL it)',
    timeoutMs: 40_000,
    async run(kit) {
      const peer = await kit.launch();
      try {
        if (!(await peer.firstFrameWithin(kit.startupMs))) fail(`no handshake: ${peer.alive ? 'timed out' : describeExit(peer)}`);
        peer.terminate();
        const ms = 5_000 * kit.slow;
        const exit = await peer.exitWithin(ms);
        if (!exit) fail(`still running ${ms / 1000}s after TERMINATE: the engine would SIGKILL it after termination-timeout, so the app's shutdown never runs`);
        if (exit.code !== 0) fail(`exited with code ${exit.code} (signal ${exit.signal}) after TERMINATE, expected 0; stderr: ${tail(peer.stderr)}`);
      } finally {
        await kit.release(peer);
      }
    },
  },
  {
    group: 'lifecycle',
    name: 'exits on its own when the engine closes the socket (EOF), not only after COCAINE_DISOWN_MS',
    timeoutMs: 40_000,
    async run(kit) {
      const peer = await kit.launch({ disownMs: 60_000 });
      try {
        if (!(await peer.firstFrameWithin(kit.startupMs))) fail(`no handshake: ${peer.alive ? 'timed out' : describeExit(peer)}`);
        peer.closeSocket();
        const ms = 5_000 * kit.slow;
        const exit = await peer.exitWithin(ms);
        if (!exit) fail(`still running ${ms / 1000}s after the socket closed: a worker of a SIGKILLed engine would live on`);
        if (exit.code !== 0) fail(`exited with code ${exit.code} (signal ${exit.signal}) at EOF, expected 0; stderr: ${tail(peer.stderr)}`);
      } finally {
        await kit.release(peer);
      }
    },
  },
  {
    group: 'protocol',
    name: 'answers an unknown event with ERROR not_found (the engine relies on it when the handshake lists no events)',
    timeoutMs: 20_000,
    async run(kit) {
      const peer = await kit.sharedWorker();
      const result = await finished(peer, peer.invoke('conformance-no-such-event'), 'event conformance-no-such-event', 10_000 * kit.slow);
      if (result.end) fail('answered END (success) for an event the app does not have');
      if (result.error?.code !== 'not_found') fail(`answered ERROR code "${result.error?.code}", expected "not_found" (callers would see ${result.error?.code === 'handler' ? 'UNKNOWN' : 'INTERNAL'} instead of NOT_FOUND)`);
    },
  },
  {
    group: 'protocol',
    name: 'ignores unknown frame types on channel 0 (forward compatibility)',
    timeoutMs: 20_000,
    async run(kit) {
      const peer = await kit.sharedWorker();
      peer.sendRaw(0x42, 0, Buffer.from('{"conformance":"a future control frame"}'));
      peer.sendRaw(8, 0);
      const body = await bodyOf(peer, peer.invoke('echo', ['still here']), 'echo after unknown control frames', 10_000 * kit.slow);
      if (body.toString() !== 'still here') fail(`echo answered ${JSON.stringify(body.toString())}`);
      if (!peer.alive) fail(`the worker ${describeExit(peer)}`);
    },
  },
  {
    group: 'protocol',
    name: 'keeps heartbeating while a handler runs longer than the heartbeat timeout',
    timeoutMs: 20_000,
    async run(kit) {
      const peer = await kit.sharedWorker();
      // The engine's heartbeat-timeout is 4 periods; the kit allows 6 (a busy machine is no defect).
      const limit = 6 * DIRECT_HEARTBEAT_MS * kit.slow;
      const started = Date.now();
      const body = await bodyOf(peer, peer.invoke('sleep', ['2400']), 'sleep 2400', 10_000 * kit.slow);
      const ended = Date.now();
      if (body.toString() !== 'slept') fail(`sleep answered ${JSON.stringify(body.toString())}, expected "slept"`);
      const beats = [started, ...peer.heartbeatsAt.filter((at) => at > started && at < ended), ended];
      const gap = Math.max(...beats.slice(1).map((at, i) => at - beats[i]));
      if (gap > limit) {
        fail(`no HEARTBEAT for ${gap} ms during a 2.4 s handler (COCAINE_HEARTBEAT_MS ${DIRECT_HEARTBEAT_MS}: the engine kills a worker silent for ${4 * DIRECT_HEARTBEAT_MS} ms)`);
      }
    },
  },
  {
    group: 'protocol',
    name: 'stops a cancelled handler and sends no result on its channel',
    timeoutMs: 20_000,
    async run(kit) {
      const peer = await kit.sharedWorker();
      const seen = peer.stderr.length;
      const channel = peer.invoke('sleep', ['4000']);
      await sleep(300);
      if (channel.frames.length > 0) fail(`sleep 4000 answered after 300 ms: ${channel.frames.map((f) => frameName(f.type)).join(', ')}`);
      peer.cancel(channel);
      const ms = 2_000 * kit.slow;
      const stopped = await waitUntil(() => peer.stderr.slice(seen).some((line) => line.includes('sleep cancelled')), ms);
      if (!stopped) fail(`the handler did not see the cancellation within ${ms / 1000}s (the conformance app's sleep prints "sleep cancelled" to stderr when it does)`);
      await sleep(300);
      const sent = channel.afterCancel.filter((frame) => frame.type !== FrameType.ERROR);
      if (sent.length) fail(`after the cancel it still sent ${sent.map((frame) => frameName(frame.type)).join(', ')} on the channel`);
      if (!peer.alive) fail(`the worker ${describeExit(peer)}`);
    },
  },
  {
    group: 'protocol',
    name: 'splits a result larger than one frame (64 MiB) into several frames',
    timeoutMs: 120_000,
    async run(kit) {
      const peer = await kit.sharedWorker();
      const size = MAX_FRAME_PAYLOAD + 4099;
      const channel = peer.invoke('big', [String(size)]);
      const result = await Promise.race([channel.done, sleep(60_000 * kit.slow).then(() => undefined)]);
      if (peer.oversize.length) {
        const frame = peer.oversize[0];
        fail(`sent a ${frameName(frame.type)} frame of ${frame.length} bytes on channel ${frame.channel}: over the 64 MiB frame limit, the engine kills the worker for it`);
      }
      if (!result) fail('big: no END within 60s');
      if (result.gone || result.error) fail(`big: ${result.gone ?? JSON.stringify(result.error)}`);
      checkPattern(Buffer.concat(channel.chunks), size, 'big');
    },
  },
  {
    group: 'protocol',
    name: 'delivers every byte to a slow engine (backpressure) and stays alive',
    timeoutMs: 60_000,
    async run(kit) {
      const peer = await kit.sharedWorker();
      const size = 16 * 1024 * 1024;
      peer.pauseReading();
      const channel = peer.invoke('big', [String(size)]);
      await sleep(2_000);
      peer.resumeReading();
      const body = await bodyOf(peer, channel, 'big 16 MiB read slowly', 30_000 * kit.slow);
      checkPattern(body, size, 'big 16 MiB read slowly');
      if (!peer.alive) fail(`the worker ${describeExit(peer)}`);
    },
  },
];
