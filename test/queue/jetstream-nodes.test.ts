import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../engine/nats/connection.js';
import { JetStreamQueue } from '../../engine/queue/jetstream.js';
import type { EventHandler, EventStatus, HandlerOutcome, QueueOptions } from '../../engine/queue/types.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';

/** Three JetStreamQueue instances on separate connections: three engine nodes sharing one app's consumer. */
const OPTIONS: QueueOptions = { defaultMaxAttempts: 3, retryBaseDelayMs: 20, retryMaxDelayMs: 100, maxResultBytes: 1024, ackWaitMs: 1_000 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const completed = (): HandlerOutcome => ({ kind: 'completed', result: Buffer.from('ok') });

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
const open: JetStreamQueue[] = [];
const rawConnections: NatsConnection[] = [];

beforeAll(async () => {
  server = await startNatsServer();
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((queue) => queue.close()));
  await Promise.all(rawConnections.splice(0).map((nc) => (nc.isClosed() ? undefined : nc.close())));
});

afterAll(async () => {
  await server?.stop();
});

async function nodes(count: number, prefix = `n${randomBytes(4).toString('hex')}`): Promise<JetStreamQueue[]> {
  const queues = await Promise.all(Array.from({ length: count }, () => JetStreamQueue.open({ servers: server.url, prefix, ...OPTIONS })));
  open.push(...queues);
  return queues;
}

async function statuses(queue: JetStreamQueue, ids: string[]): Promise<EventStatus[]> {
  const all: EventStatus[] = [];
  for (let i = 0; i < ids.length; i += 200) {
    all.push(...((await Promise.all(ids.slice(i, i + 200).map((id) => queue.status(id)))) as EventStatus[]));
  }
  return all;
}

describe('JetStreamQueue across three nodes', () => {
  it('runs each of 3,000 events exactly once, spread over the nodes', async () => {
    const queues = await nodes(3);
    const runs = new Map<string, number>();
    const perNode = [0, 0, 0];
    queues.forEach((queue, node) =>
      queue.subscribe('spread', async (event) => {
        runs.set(event.id, (runs.get(event.id) ?? 0) + 1);
        perNode[node]!++;
        await sleep(2);
        return completed();
      }, { concurrency: 16 }),
    );
    const ids: string[] = [];
    let next = 0;
    const producer = async () => {
      while (next < 3_000) {
        const i = next++;
        const { id } = await queues[i % 3]!.enqueue({ app: 'spread', event: 'e', data: Buffer.from(`p${i}`), headers: {}, maxAttempts: 3 });
        ids.push(id);
      }
    };
    await Promise.all(Array.from({ length: 128 }, producer));
    await eventually(() => runs.size, (n) => n === 3_000, '3,000 events to run');
    const final = await eventually(() => statuses(queues[0]!, ids), (all) => all.every((s) => s?.state === 'COMPLETED'), 'every event COMPLETED');
    expect(final.every((s) => s.attempts === 1 && s.result?.toString() === 'ok')).toBe(true);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    for (const handled of perNode) expect(handled).toBeGreaterThan(300);
    expect(perNode.reduce((a, b) => a + b)).toBe(3_000);
    expect(await queues[1]!.depth('spread')).toBe(0);
  }, 40_000);

  it('redelivers the events of a node that died mid-handler to the others after ack wait', async () => {
    const prefix = `d${randomBytes(4).toString('hex')}`;
    const deadConnection = await connectNats(server.url, { name: 'doomed node' });
    rawConnections.push(deadConnection);
    // Not in `open`: its handlers never settle, so its close() would wait forever.
    const doomed = await JetStreamQueue.open({ servers: server.url, prefix, connection: deadConnection, ...OPTIONS });
    const [b, c] = await nodes(2, prefix);
    const held = new Set<string>();
    let unblock!: () => void;
    const never = new Promise<never>((_resolve, reject) => (unblock = () => reject(new Error('test over'))));
    doomed.subscribe('crash', async (event) => {
      held.add(event.id);
      return never;
    }, { concurrency: 8 });
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push((await b!.enqueue({ app: 'crash', event: 'e', data: Buffer.from(`c${i}`), headers: {}, maxAttempts: 3 })).id);
    await eventually(() => held.size, (n) => n === 8, 'the doomed node to hold 8 events');

    const seenBy = new Map<string, { node: string; attempt: number; at: number }>();
    const survivor = (node: string): EventHandler => async (event) => {
      seenBy.set(event.id, { node, attempt: event.attempt, at: Date.now() });
      return completed();
    };
    b!.subscribe('crash', survivor('b'), { concurrency: 4 });
    c!.subscribe('crash', survivor('c'), { concurrency: 4 });
    await eventually(() => seenBy.size, (n) => n === 32, 'the 32 others to run');
    // Held past two ack waits, kept by msg.working(): nobody else got them while the node lived.
    await sleep(2 * OPTIONS.ackWaitMs + 200);
    expect([...held].some((id) => seenBy.has(id))).toBe(false);
    expect((await statuses(b!, [...held])).every((s) => s.state === 'PROCESSING' && s.attempts === 1)).toBe(true);

    const diedAt = Date.now();
    await deadConnection.close(); // no ack, no nak: as if the process were killed
    await eventually(() => seenBy.size, (n) => n === 40, 'the dead node\'s events to be redelivered', 10_000);
    for (const id of held) {
      const seen = seenBy.get(id)!;
      expect(seen.attempt).toBe(2); // the dead node's attempt counts
      expect(seen.at - diedAt).toBeGreaterThanOrEqual(OPTIONS.ackWaitMs - 300);
    }
    const final = await eventually(() => statuses(b!, ids), (all) => all.every((s) => s.state === 'COMPLETED'), 'every event COMPLETED');
    expect(final.filter((s) => s.attempts === 2).map((s) => s.id).sort()).toEqual([...held].sort());
    expect(new Set([...seenBy.values()].map((s) => s.node))).toEqual(new Set(['b', 'c']));
    unblock();
  }, 40_000);

  it('dead-letters a poisoned event after its attempts on any node, and redrives it', async () => {
    const queues = await nodes(3);
    let poisoned = true;
    const attemptsOn: number[] = [];
    queues.forEach((queue, node) =>
      queue.subscribe('poison', async (event) => {
        if (event.event !== 'poison') return completed();
        attemptsOn.push(node);
        return poisoned ? { kind: 'failed', error: `bad pill on node ${node}`, retry: true } : completed();
      }, { concurrency: 4 }),
    );
    const { id } = await queues[0]!.enqueue({ app: 'poison', event: 'poison', data: Buffer.from('pill'), headers: { h: '1' }, maxAttempts: 3 });
    const healthy = await Promise.all(Array.from({ length: 30 }, () => queues[1]!.enqueue({ app: 'poison', event: 'ok', data: Buffer.alloc(0), headers: {}, maxAttempts: 3 })));
    const failed = await eventually(() => queues[2]!.status(id), (s) => s?.state === 'FAILED', 'the poisoned event to fail');
    expect(failed).toMatchObject({ attempts: 3, maxAttempts: 3 });
    expect(failed!.lastError).toMatch(/^bad pill on node \d$/);
    expect(attemptsOn).toHaveLength(3);
    const dead = await queues[1]!.deadLetters('poison');
    expect(dead.map((s) => s.id)).toEqual([id]);
    expect(await queues[1]!.deadLetters('other-app')).toEqual([]);
    expect((await statuses(queues[0]!, healthy.map((h) => h.id))).every((s) => s.state === 'COMPLETED')).toBe(true);

    // Redriven and failing again within the stream's duplicate window: a second dead letter.
    expect(await queues[2]!.redrive(id)).toMatchObject({ state: 'PENDING', attempts: 0 });
    await eventually(() => queues[1]!.status(id), (s) => s?.state === 'FAILED', 'the redriven event to fail again');
    expect(attemptsOn).toHaveLength(6);
    expect((await queues[0]!.deadLetters('poison')).map((s) => s.id)).toEqual([id]);

    poisoned = false;
    expect(await queues[1]!.redrive(id)).toMatchObject({ state: 'PENDING', attempts: 0 });
    const done = await eventually(() => queues[0]!.status(id), (s) => s?.state === 'COMPLETED', 'the redriven event to complete');
    expect(done).toMatchObject({ attempts: 1, resultTruncated: false });
    expect(attemptsOn).toHaveLength(7);
    expect(await queues[0]!.deadLetters()).toEqual([]);
    await expect(queues[0]!.redrive(id)).rejects.toMatchObject({ code: 'invalid_argument' });
    expect(await queues[0]!.depth('poison')).toBe(0);
  }, 40_000);
});
