import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamQueue } from '../../engine/queue/jetstream.js';
import { LEASE_EXPIRED_ERROR, type EventStatus, type QueuedEvent } from '../../engine/queue/types.js';
import { REPO, compileModule } from '../helpers/compile-module.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';

const CHILD = join(REPO, 'test/queue/jetstream-child.mjs');
const ACK_WAIT_MS = 1_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually<T>(read: () => Promise<T> | T, accept: (value: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(value)}`);
    await sleep(20);
  }
}

let server: NatsServer;
let modulePath: string;
let outDir: string;
let queue: JetStreamQueue | undefined;
let child: ChildProcess | undefined;

beforeAll(async () => {
  server = await startNatsServer();
  ({ modulePath, outDir } = await compileModule('engine/queue/jetstream.ts'));
}, 120_000);

afterEach(async () => {
  child?.kill('SIGKILL');
  child = undefined;
  await queue?.close();
  queue = undefined;
});

afterAll(async () => {
  await server?.stop();
  await rm(outDir, { recursive: true, force: true });
});

/** Starts a node in a child process; `until` resolves once its output passes `test`. */
function startNode(prefix: string, app: string, concurrency: number) {
  const proc = spawn(process.execPath, [CHILD, modulePath, server.url, prefix, app, String(ACK_WAIT_MS), String(concurrency)], { stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  const lines: string[] = [];
  let stderr = '';
  proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: proc.stdout! }).on('line', (line) => lines.push(line));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => proc.on('exit', (code, signal) => resolve(signal ?? code)));
  const until = (test: (lines: string[]) => boolean, what: string) =>
    eventually(
      () => {
        if (proc.exitCode !== null) throw new Error(`the node exited (${proc.exitCode}) before ${what}; stderr: ${stderr}`);
        return lines;
      },
      test,
      what,
      30_000,
    );
  return { proc, lines, until, exited };
}

describe('JetStreamQueue: a node SIGKILLed mid-handler', () => {
  it('keeps its events while it lives (however long the handler), and they are redelivered after ack wait once it dies', async () => {
    const prefix = `k${randomBytes(4).toString('hex')}`;
    const app = 'killed';
    queue = await JetStreamQueue.open({ servers: server.url, prefix, ackWaitMs: ACK_WAIT_MS, retryBaseDelayMs: 10, retryMaxDelayMs: 50 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await queue.enqueue({ app, event: 'e', data: Buffer.from(`k${i}`), headers: {}, maxAttempts: 3 })).id);

    // The doomed node takes two events and runs their handlers "forever".
    const node = startNode(prefix, app, 2);
    const processing = (lines: string[]) => lines.filter((line) => line.startsWith('processing '));
    await node.until((lines) => processing(lines).length === 2, 'the child to hold two events');
    const held = processing(node.lines).map((line) => line.split(' ')[1]!);
    expect(processing(node.lines).map((line) => line.split(' ')[2])).toEqual(['1', '1']);

    // This node runs whatever it is handed at once.
    const seen = new Map<string, QueuedEvent & { at: number }>();
    queue.subscribe(app, async (event) => {
      seen.set(event.id, { ...event, at: Date.now() });
      return { kind: 'completed', result: Buffer.from('ok') };
    }, { concurrency: 4 });
    const free = ids.find((id) => !held.includes(id))!;
    await eventually(() => seen.has(free), Boolean, 'the third event to run here');

    // Three ack waits with the child alive: its in-progress acks keep both events there.
    await sleep(3 * ACK_WAIT_MS);
    expect(held.filter((id) => seen.has(id))).toEqual([]);
    expect(processing(node.lines)).toHaveLength(2);
    for (const id of held) expect(await queue.status(id)).toMatchObject({ state: 'PROCESSING', attempts: 1 });

    const killedAt = Date.now();
    node.proc.kill('SIGKILL');
    expect(await node.exited).toBe('SIGKILL');
    child = undefined;
    await eventually(() => held.every((id) => seen.has(id)), Boolean, 'the dead node\'s events to be redelivered here', 20_000);
    for (const id of held) {
      const event = seen.get(id)!;
      expect(event.attempt).toBe(2); // the killed node's attempt counts
      expect(event.at - killedAt).toBeGreaterThanOrEqual(ACK_WAIT_MS - 300);
    }
    const statuses = (await eventually(
      () => Promise.all(held.map((id) => queue!.status(id))),
      (all) => all.every((s) => s?.state === 'COMPLETED'),
      'both to complete',
    )) as EventStatus[];
    for (const status of statuses) expect(status).toMatchObject({ attempts: 2, lastError: LEASE_EXPIRED_ERROR });
  }, 90_000);
});
