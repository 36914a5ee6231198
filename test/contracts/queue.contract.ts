import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EventHandler, EventStatus, HandlerOutcome, Queue, QueuedEvent, QueueOptions } from '../../engine/queue/types.js';

/**
 * Options every backend's factory must open its queue with, so the timings below hold: small
 * retry delays, a small result limit, and a lease long enough never to fire during a test.
 */
export const QUEUE_CONTRACT_OPTIONS: Readonly<QueueOptions> = Object.freeze({
  defaultMaxAttempts: 3,
  retryBaseDelayMs: 40,
  retryMaxDelayMs: 160,
  maxResultBytes: 1024,
  ackWaitMs: 30_000,
});

export interface QueueContractFixture {
  queue: Queue;
  /**
   * Closes the current queue (if still open) and opens a new one over the same storage, with
   * QUEUE_CONTRACT_OPTIONS changed by `overrides`.
   */
  reopen(overrides?: Partial<QueueOptions>): Promise<Queue>;
  /** Closes whatever is open and deletes the storage. */
  cleanup(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually<T>(read: () => Promise<T>, accept: (value: T) => boolean, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (accept(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(value)}`);
    await sleep(10);
  }
}

const DAY_MS = 24 * 60 * 60 * 1000;

const completed = (result: string | Buffer = ''): HandlerOutcome => ({ kind: 'completed', result: Buffer.from(result) });

export function describeQueueContract(name: string, factory: () => Promise<QueueContractFixture>): void {
  describe(`Queue contract: ${name}`, () => {
    let fixture: QueueContractFixture;
    let queue: Queue;
    let app: string;
    const closers: { close(): Promise<void> }[] = [];

    const enqueue = (event = 'ping', data: Buffer = Buffer.from('x'), extra: Partial<Parameters<Queue['enqueue']>[0]> = {}) =>
      queue.enqueue({ app, event, data, headers: {}, maxAttempts: 3, ...extra });
    const subscribe = (handler: EventHandler, concurrency = 1, on: Queue = queue) => {
      const subscription = on.subscribe(app, handler, { concurrency });
      closers.push(subscription);
      return subscription;
    };
    const stateOf = (id: string, state: EventStatus['state'], on: () => Queue = () => queue) =>
      eventually(
        () => on().status(id),
        (s) => s?.state === state,
        `${id} to be ${state}`,
      ) as Promise<EventStatus>;

    beforeEach(async () => {
      fixture = await factory();
      queue = fixture.queue;
      app = `app-${randomBytes(4).toString('hex')}`;
    });

    afterEach(async () => {
      await Promise.all(closers.splice(0).map((s) => s.close()));
      await fixture.cleanup();
    });

    it('persists an enqueued event as PENDING and reports unknown ids as undefined', async () => {
      const before = Date.now();
      const { id, duplicate } = await enqueue('ping', Buffer.from('hello'), { maxAttempts: 4 });
      expect(duplicate).toBe(false);
      expect(id.length).toBeGreaterThan(0);
      const status = await queue.status(id);
      expect(status).toMatchObject({ id, app, event: 'ping', state: 'PENDING', attempts: 0, maxAttempts: 4, resultTruncated: false });
      expect(status!.createdAt).toBeGreaterThanOrEqual(before - 1000);
      expect(await queue.depth(app)).toBe(1);
      expect(await queue.status('no-such-event-id')).toBeUndefined();
    });

    it('generates distinct ids', async () => {
      const ids = await Promise.all(Array.from({ length: 50 }, () => enqueue()));
      expect(new Set(ids.map((r) => r.id)).size).toBe(50);
    });

    it('delivers an event intact and records the result as COMPLETED', async () => {
      const data = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const headers = { 'content-type': 'application/octet-stream', 'x-trace': 'abc=1; ü' };
      const { id } = await queue.enqueue({ app, event: 'resize', data, headers, maxAttempts: 2 });
      const seen: QueuedEvent[] = [];
      subscribe(async (event) => {
        seen.push(event);
        return completed(Buffer.concat([Buffer.from('got:'), event.data]));
      });
      const status = await stateOf(id, 'COMPLETED');
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ id, app, event: 'resize', headers, attempt: 1, maxAttempts: 2 });
      expect(Buffer.compare(seen[0]!.data, data)).toBe(0);
      expect(status.attempts).toBe(1);
      expect(Buffer.compare(status.result!, Buffer.concat([Buffer.from('got:'), data]))).toBe(0);
      expect(status.resultTruncated).toBe(false);
      expect(await queue.depth(app)).toBe(0);
    });

    it('wakes a waiting subscriber as soon as an event is enqueued', async () => {
      let deliveredAt = 0;
      subscribe(async () => {
        deliveredAt = Date.now();
        return completed();
      });
      await sleep(50);
      const enqueuedAt = Date.now();
      const { id } = await enqueue();
      await stateOf(id, 'COMPLETED');
      expect(deliveredAt - enqueuedAt).toBeLessThan(500);
    });

    it('delivers in FIFO order', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push((await enqueue('ping', Buffer.from(String(i)))).id);
      const order: string[] = [];
      subscribe(async (event) => {
        order.push(event.id);
        return completed();
      });
      await stateOf(ids[19]!, 'COMPLETED');
      expect(order).toEqual(ids);
    });

    it('never runs more than `concurrency` handlers at once', async () => {
      const ids = (await Promise.all(Array.from({ length: 30 }, () => enqueue()))).map((r) => r.id);
      let inFlight = 0;
      let maxInFlight = 0;
      subscribe(async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await sleep(15);
        inFlight--;
        return completed();
      }, 4);
      for (const id of ids) await stateOf(id, 'COMPLETED');
      expect(maxInFlight).toBe(4);
    });

    it('retries a failing event with growing delays, then fails it into the dead letters', async () => {
      const { id } = await enqueue('flaky', Buffer.from('x'), { maxAttempts: 3 });
      const attempts: { attempt: number; at: number }[] = [];
      subscribe(async (event) => {
        attempts.push({ attempt: event.attempt, at: Date.now() });
        return { kind: 'failed', error: `boom ${event.attempt}`, retry: true };
      });
      const status = await stateOf(id, 'FAILED');
      expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
      expect(status).toMatchObject({ attempts: 3, maxAttempts: 3, lastError: 'boom 3' });
      const base = QUEUE_CONTRACT_OPTIONS.retryBaseDelayMs;
      expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(base - 5);
      expect(attempts[2]!.at - attempts[1]!.at).toBeGreaterThanOrEqual(2 * base - 5);
      expect(await queue.depth(app)).toBe(0);
      const dead = await queue.deadLetters(app);
      expect(dead.map((d) => d.id)).toEqual([id]);
      expect(dead[0]).toMatchObject({ state: 'FAILED', lastError: 'boom 3' });
      expect((await queue.deadLetters()).some((d) => d.id === id)).toBe(true);
    });

    it('counts a thrown handler error as a failed attempt and retries it', async () => {
      const { id } = await enqueue('throws', Buffer.from('x'), { maxAttempts: 2 });
      subscribe(async (event) => {
        if (event.attempt === 1) throw new Error('handler exploded');
        return completed('second time lucky');
      });
      const status = await stateOf(id, 'COMPLETED');
      expect(status).toMatchObject({ attempts: 2, lastError: 'handler exploded' });
      expect(status.result!.toString()).toBe('second time lucky');
    });

    it('fails at once on retry: false', async () => {
      const { id } = await enqueue('unknown-event', Buffer.from('x'), { maxAttempts: 3 });
      let calls = 0;
      subscribe(async () => {
        calls++;
        return { kind: 'failed', error: 'no such event', retry: false };
      });
      const status = await stateOf(id, 'FAILED');
      expect(status).toMatchObject({ attempts: 1, lastError: 'no such event' });
      await sleep(QUEUE_CONTRACT_OPTIONS.retryBaseDelayMs * 2);
      expect(calls).toBe(1);
      expect((await queue.deadLetters(app)).map((d) => d.id)).toEqual([id]);
    });

    it('lists dead letters newest first', async () => {
      const first = await enqueue('a', Buffer.from('1'), { maxAttempts: 1 });
      subscribe(async () => ({ kind: 'failed', error: 'nope', retry: false }));
      await stateOf(first.id, 'FAILED');
      await sleep(5);
      const second = await enqueue('b', Buffer.from('2'), { maxAttempts: 1 });
      await stateOf(second.id, 'FAILED');
      expect((await queue.deadLetters(app)).map((d) => d.id)).toEqual([second.id, first.id]);
      expect(await queue.deadLetters(`${app}-other`)).toEqual([]);
    });

    it('redrives a dead letter with a fresh attempt budget', async () => {
      const { id } = await enqueue('later', Buffer.from('payload'), { maxAttempts: 1 });
      let healthy = false;
      const seen: QueuedEvent[] = [];
      subscribe(async (event) => {
        seen.push(event);
        return healthy ? completed('fixed') : { kind: 'failed', error: 'down', retry: true };
      });
      await stateOf(id, 'FAILED');
      healthy = true;
      const redriven = await queue.redrive(id);
      expect(redriven).toMatchObject({ id, state: expect.stringMatching(/^(PENDING|PROCESSING|COMPLETED)$/), maxAttempts: 1 });
      const status = await stateOf(id, 'COMPLETED');
      expect(status.attempts).toBe(1);
      expect(status.result!.toString()).toBe('fixed');
      expect(seen.map((e) => e.attempt)).toEqual([1, 1]);
      expect(seen[1]!.data.toString()).toBe('payload');
      expect(await queue.deadLetters(app)).toEqual([]);
    });

    it('refuses to redrive unknown or non-FAILED events', async () => {
      await expect(queue.redrive('no-such-event-id')).rejects.toMatchObject({ code: 'event_id_not_found' });
      const { id } = await enqueue();
      await expect(queue.redrive(id)).rejects.toMatchObject({ code: 'invalid_argument' });
      expect((await queue.status(id))!.state).toBe('PENDING');
    });

    it('does not count a released event as an attempt', async () => {
      const { id } = await enqueue('busy', Buffer.from('x'), { maxAttempts: 1 });
      const deliveries: { attempt: number; at: number }[] = [];
      subscribe(async (event) => {
        deliveries.push({ attempt: event.attempt, at: Date.now() });
        return deliveries.length < 3 ? { kind: 'released', delayMs: 40 } : completed('done');
      });
      const status = await stateOf(id, 'COMPLETED');
      expect(deliveries.map((d) => d.attempt)).toEqual([1, 1, 1]);
      expect(deliveries[1]!.at - deliveries[0]!.at).toBeGreaterThanOrEqual(35);
      expect(status.attempts).toBe(1);
    });

    it('holds a delayed event until notBefore and counts it in the depth meanwhile', async () => {
      const notBefore = Date.now() + 300;
      const { id } = await enqueue('later', Buffer.from('x'), { notBefore });
      const { id: now } = await enqueue('now');
      let deliveredAt = 0;
      subscribe(async (event) => {
        if (event.id === id) deliveredAt = Date.now();
        return completed();
      });
      await stateOf(now, 'COMPLETED');
      expect((await queue.status(id))!.state).toBe('PENDING');
      expect(await queue.depth(app)).toBe(1);
      await stateOf(id, 'COMPLETED');
      expect(deliveredAt).toBeGreaterThanOrEqual(notBefore - 5);
      expect(deliveredAt - notBefore).toBeLessThan(1000);
      expect(await queue.depth(app)).toBe(0);
    });

    it('treats a repeated client id as a duplicate and changes nothing', async () => {
      const id = `client-${randomBytes(6).toString('hex')}`;
      const first = await queue.enqueue({ id, app, event: 'once', data: Buffer.from('first'), headers: { n: '1' }, maxAttempts: 2 });
      const second = await queue.enqueue({ id, app, event: 'twice', data: Buffer.from('second'), headers: { n: '2' }, maxAttempts: 5 });
      expect(first).toEqual({ id, duplicate: false });
      expect(second).toEqual({ id, duplicate: true });
      expect(await queue.status(id)).toMatchObject({ event: 'once', maxAttempts: 2, state: 'PENDING' });
      expect(await queue.depth(app)).toBe(1);

      const racing = `client-${randomBytes(6).toString('hex')}`;
      const results = await Promise.all(
        Array.from({ length: 5 }, () => queue.enqueue({ id: racing, app, event: 'race', data: Buffer.from('r'), headers: {}, maxAttempts: 1 })),
      );
      expect(results.filter((r) => !r.duplicate)).toHaveLength(1);

      const seen: QueuedEvent[] = [];
      subscribe(async (event) => {
        seen.push(event);
        return completed();
      });
      await stateOf(id, 'COMPLETED');
      await stateOf(racing, 'COMPLETED');
      expect(seen).toHaveLength(2);
      expect(seen[0]!.data.toString()).toBe('first');
      expect((await queue.enqueue({ id, app, event: 'again', data: Buffer.from('x'), headers: {}, maxAttempts: 1 })).duplicate).toBe(true);
      expect((await queue.status(id))!.state).toBe('COMPLETED');
    });

    it('keeps results up to maxResultBytes and drops larger ones', async () => {
      const limit = QUEUE_CONTRACT_OPTIONS.maxResultBytes;
      const small = await enqueue('small');
      const big = await enqueue('big');
      subscribe(async (event) => completed(Buffer.alloc(event.event === 'big' ? limit + 1 : limit, 7)));
      const smallStatus = await stateOf(small.id, 'COMPLETED');
      expect(smallStatus.resultTruncated).toBe(false);
      expect(smallStatus.result!.length).toBe(limit);
      const bigStatus = await stateOf(big.id, 'COMPLETED');
      expect(bigStatus.resultTruncated).toBe(true);
      expect(bigStatus.result === undefined || bigStatus.result.length === 0).toBe(true);
    });

    it('stops delivering once the subscription is closed', async () => {
      const subscription = subscribe(async () => completed());
      const { id: first } = await enqueue();
      await stateOf(first, 'COMPLETED');
      await subscription.close();
      const { id: second } = await enqueue();
      await sleep(100);
      expect((await queue.status(second))!.state).toBe('PENDING');
      expect(await queue.depth(app)).toBe(1);
    });

    it('releases in-flight events on close without counting the attempt', async () => {
      const { id } = await enqueue('slow', Buffer.from('x'), { maxAttempts: 1 });
      let started!: () => void;
      const running = new Promise<void>((resolve) => (started = resolve));
      let aborted = false;
      const subscription = subscribe(
        (_event, signal) =>
          new Promise<HandlerOutcome>((_resolve, reject) => {
            started();
            signal.addEventListener('abort', () => {
              aborted = true;
              reject(new Error('aborted'));
            });
          }),
      );
      await running;
      expect((await queue.status(id))!.state).toBe('PROCESSING');
      await subscription.close();
      expect(aborted).toBe(true);
      expect(await queue.status(id)).toMatchObject({ state: 'PENDING', attempts: 0 });
      expect(await queue.depth(app)).toBe(1);

      // And through a whole-queue close: the event survives into the next queue, still not counted.
      const again = subscribe((_event, signal) => new Promise<HandlerOutcome>((_r, reject) => signal.addEventListener('abort', () => reject(new Error('stop')))));
      await stateOf(id, 'PROCESSING');
      await queue.close();
      await again.close();
      queue = await fixture.reopen();
      expect(await queue.status(id)).toMatchObject({ state: 'PENDING', attempts: 0 });
      const seen: QueuedEvent[] = [];
      subscribe(async (event) => {
        seen.push(event);
        return completed('after restart');
      });
      const status = await stateOf(id, 'COMPLETED');
      expect(seen.map((e) => e.attempt)).toEqual([1]);
      expect(status.attempts).toBe(1);
    });

    it('keeps pending and delayed events across a reopen', async () => {
      const data = randomBytes(4096);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await enqueue('keep', data, { maxAttempts: 2 })).id);
      const delayed = (await enqueue('keep', data, { notBefore: Date.now() + 200 })).id;
      queue = await fixture.reopen();
      expect(await queue.depth(app)).toBe(6);
      expect(await queue.status(ids[0]!)).toMatchObject({ state: 'PENDING', attempts: 0, maxAttempts: 2 });
      const order: string[] = [];
      subscribe(async (event) => {
        expect(Buffer.compare(event.data, data)).toBe(0);
        order.push(event.id);
        return completed();
      });
      await stateOf(delayed, 'COMPLETED');
      expect(order).toEqual([...ids, delayed]);
      expect(await queue.depth(app)).toBe(0);
    });

    it('reports the depth of each app separately', async () => {
      const other = `${app}-b`;
      expect(await queue.depth(app)).toBe(0);
      await Promise.all(Array.from({ length: 7 }, () => enqueue()));
      await queue.enqueue({ app: other, event: 'x', data: Buffer.alloc(0), headers: {}, maxAttempts: 1 });
      expect(await queue.depth(app)).toBe(7);
      expect(await queue.depth(other)).toBe(1);
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      subscribe(async () => {
        await gate;
        return completed();
      }, 3);
      await eventually(() => queue.depth(app), (d) => d === 4, 'depth 4 while 3 are processing');
      release();
      await eventually(() => queue.depth(app), (d) => d === 0, 'depth 0');
      expect(await queue.depth(other)).toBe(1);
    });

    it('keeps the lease of a live handler that runs 2.5 ack waits: one attempt, never aborted', async () => {
      const ackWaitMs = 1_000;
      queue = await fixture.reopen({ ackWaitMs });
      const { id } = await enqueue('slow', Buffer.from('x'), { maxAttempts: 3 });
      const attempts: number[] = [];
      let aborted = false;
      // Two slots: a redelivery while the first handler runs would be seen, not queued behind it.
      subscribe(async (event, signal) => {
        attempts.push(event.attempt);
        signal.addEventListener('abort', () => (aborted = true));
        await sleep(2.5 * ackWaitMs);
        return completed(`done ${event.attempt}`);
      }, 2);
      const status = (await eventually(() => queue.status(id), (s) => s?.state === 'COMPLETED' || s?.state === 'FAILED', `${id} to settle`, 20_000))!;
      // Time for a redelivery of the lease-expired delivery to show up, had there been one.
      await sleep(ackWaitMs);
      expect(attempts).toEqual([1]);
      expect(aborted).toBe(false);
      expect(status).toMatchObject({ attempts: 1, state: 'COMPLETED' });
      expect(status.lastError).toBeUndefined();
      expect(status.result!.toString()).toBe('done 1');
    }, 30_000);

    it('holds an event delayed by 30 days (past the 2^31-1 ms timer limit) as PENDING', async () => {
      const notBefore = Date.now() + 30 * DAY_MS;
      const { id: later } = await enqueue('in-a-month', Buffer.from('x'), { notBefore });
      const delivered: string[] = [];
      subscribe(async (event) => {
        delivered.push(event.event);
        return completed();
      });
      // An event enqueued after it runs at once, and the delayed one still waits.
      const { id: now } = await enqueue('now');
      await stateOf(now, 'COMPLETED');
      await sleep(1_000);
      expect(delivered).toEqual(['now']);
      expect(await queue.status(later)).toMatchObject({ state: 'PENDING', attempts: 0 });
      expect(await queue.depth(app)).toBe(1);
      // And across a reopen (the delay is persisted, not only held by a timer).
      queue = await fixture.reopen();
      subscribe(async (event) => {
        delivered.push(event.event);
        return completed();
      });
      await sleep(500);
      expect(delivered).toEqual(['now']);
      expect(await queue.status(later)).toMatchObject({ state: 'PENDING', attempts: 0 });
    });
  });
}
