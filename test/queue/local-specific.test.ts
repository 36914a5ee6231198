import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { retryDelayMs } from '../../engine/queue/backoff.js';
import { eventIdTime, newEventId } from '../../engine/queue/ids.js';
import { LocalQueue, resolveLocalQueueOptions, DEFAULT_LOCAL_QUEUE_OPTIONS } from '../../engine/queue/local.js';
import { resolveQueueOptions } from '../../engine/queue/options.js';
import { DEFAULT_QUEUE_OPTIONS, type HandlerOutcome } from '../../engine/queue/types.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const until = async (check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
};

describe('event ids', () => {
  it('are unique, UUIDv7-shaped and sort in creation order', () => {
    const ids = Array.from({ length: 10_000 }, () => newEventId());
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    expect(ids[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const now = Date.now();
    expect(Math.abs(eventIdTime(newEventId(now))! - now)).toBeLessThanOrEqual(5);
    expect(eventIdTime('client-given')).toBeUndefined();
  });
});

describe('retry backoff', () => {
  it('doubles from the base delay and stops at the maximum', () => {
    const options = { retryBaseDelayMs: 200, retryMaxDelayMs: 1000 };
    expect([1, 2, 3, 4, 50, 5000].map((n) => retryDelayMs(n, options))).toEqual([200, 400, 800, 1000, 1000, 1000]);
  });
});

describe('resolveLocalQueueOptions', () => {
  it('fills defaults and returns a new object', () => {
    const resolved = resolveLocalQueueOptions({ retryBaseDelayMs: 5 });
    expect(resolved).toEqual({ ...DEFAULT_LOCAL_QUEUE_OPTIONS, retryBaseDelayMs: 5 });
    expect(resolved).not.toBe(DEFAULT_LOCAL_QUEUE_OPTIONS);
    expect(DEFAULT_LOCAL_QUEUE_OPTIONS.retentionMs).toBe(7 * 24 * 3600 * 1000);
  });

  it('names the offending field', () => {
    expect(() => resolveLocalQueueOptions({ defaultMaxAttempts: 0 })).toThrow(/defaultMaxAttempts/);
    expect(() => resolveLocalQueueOptions({ defaultMaxAttempts: 0 })).toThrow(expect.objectContaining({ code: 'invalid_argument', field: 'queue.defaultMaxAttempts' }));
    expect(() => resolveLocalQueueOptions({ ackWaitMs: Number.NaN })).toThrow(/ackWaitMs/);
    expect(() => resolveLocalQueueOptions({ retentionMs: -1 })).toThrow(/retentionMs/);
    expect(() => resolveLocalQueueOptions({ retryBaseDelayMs: 100, retryMaxDelayMs: 10 })).toThrow(/retryMaxDelayMs/);
  });

  it('refuses durations past their documented maximum, naming the field and the limit', () => {
    const day = 24 * 3600 * 1000;
    expect(resolveLocalQueueOptions({ ackWaitMs: day }).ackWaitMs).toBe(day);
    expect(() => resolveLocalQueueOptions({ ackWaitMs: day + 1 })).toThrow(expect.objectContaining({ field: 'queue.ackWaitMs', message: expect.stringMatching(/24 h/) }));
    expect(() => resolveLocalQueueOptions({ ackWaitMs: 99 })).toThrow(expect.objectContaining({ field: 'queue.ackWaitMs' }));
    expect(() => resolveLocalQueueOptions({ retryMaxDelayMs: 7 * day + 1 })).toThrow(expect.objectContaining({ field: 'queue.retryMaxDelayMs' }));
    expect(() => resolveLocalQueueOptions({ closeTimeoutMs: 2 ** 31 })).toThrow(expect.objectContaining({ field: 'queue.closeTimeoutMs' }));
    expect(() => resolveLocalQueueOptions({ pruneIntervalMs: 30 * day })).toThrow(expect.objectContaining({ field: 'queue.pruneIntervalMs' }));
    expect(() => resolveLocalQueueOptions({ retentionMs: 366 * day })).toThrow(expect.objectContaining({ field: 'queue.retentionMs' }));
  });
});

describe('resolveQueueOptions (the options every backend shares)', () => {
  it('fills defaults and checks each field with its limits', () => {
    expect(resolveQueueOptions({ ackWaitMs: 5_000 })).toEqual({ ...DEFAULT_QUEUE_OPTIONS, ackWaitMs: 5_000 });
    expect(() => resolveQueueOptions({ ackWaitMs: 25 * 3600 * 1000 })).toThrow(expect.objectContaining({ code: 'invalid_argument', field: 'queue.ackWaitMs' }));
    expect(() => resolveQueueOptions({ defaultMaxAttempts: 1.5 })).toThrow(expect.objectContaining({ field: 'queue.defaultMaxAttempts' }));
    expect(() => resolveQueueOptions({ maxResultBytes: Infinity })).toThrow(expect.objectContaining({ field: 'queue.maxResultBytes' }));
    expect(() => resolveQueueOptions({ retryBaseDelayMs: 100, retryMaxDelayMs: 10 })).toThrow(expect.objectContaining({ field: 'queue.retryMaxDelayMs' }));
  });
});

describe('LocalQueue specifics', () => {
  let dir: string;
  let queue: LocalQueue;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'queue-local-'));
  });

  afterEach(async () => {
    await queue?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('rejects malformed enqueues, naming the field', async () => {
    queue = await LocalQueue.open({ dir });
    const base = { app: 'a', event: 'e', data: Buffer.alloc(0), headers: {}, maxAttempts: 1 };
    await expect(queue.enqueue({ ...base, app: '' })).rejects.toMatchObject({ code: 'invalid_argument', field: 'app' });
    await expect(queue.enqueue({ ...base, data: 'text' as unknown as Buffer })).rejects.toMatchObject({ field: 'data' });
    await expect(queue.enqueue({ ...base, headers: { n: 1 as unknown as string } })).rejects.toMatchObject({ field: 'headers' });
    await expect(queue.enqueue({ ...base, maxAttempts: 1.5 })).rejects.toMatchObject({ field: 'maxAttempts' });
    await expect(queue.enqueue({ ...base, id: '' })).rejects.toMatchObject({ field: 'id' });
    await expect(queue.enqueue({ ...base, notBefore: Date.now() + 400 * 24 * 3600 * 1000 })).rejects.toMatchObject({ field: 'notBefore', message: expect.stringMatching(/366 days/) });
    expect(() => queue.subscribe('a', async () => ({ kind: 'released', delayMs: 0 }), { concurrency: 0 })).toThrow(/concurrency/);
    expect(await queue.depth('a')).toBe(0);
  });

  it('uses defaultMaxAttempts when the enqueuer passes 0', async () => {
    queue = await LocalQueue.open({ dir, defaultMaxAttempts: 7 });
    const { id } = await queue.enqueue({ app: 'a', event: 'e', data: Buffer.alloc(0), headers: {}, maxAttempts: 0 });
    expect((await queue.status(id))!.maxAttempts).toBe(7);
  });

  it('refuses a second queue on an open directory, and work once closed', async () => {
    queue = await LocalQueue.open({ dir });
    await expect(LocalQueue.open({ dir: join(dir, '.') })).rejects.toMatchObject({ code: 'queue_error', message: expect.stringMatching(/already open/) });
    await queue.close();
    await expect(queue.status('x')).rejects.toMatchObject({ code: 'shutting_down' });
    await expect(queue.enqueue({ app: 'a', event: 'e', data: Buffer.alloc(0), headers: {}, maxAttempts: 1 })).rejects.toMatchObject({ code: 'shutting_down' });
  });

  it('releases the event of a handler that ignores the abort once closeTimeoutMs passes', async () => {
    queue = await LocalQueue.open({ dir, closeTimeoutMs: 100 });
    const { id } = await queue.enqueue({ app: 'a', event: 'e', data: Buffer.alloc(0), headers: {}, maxAttempts: 1 });
    let started = false;
    const subscription = queue.subscribe('a', () => {
      started = true;
      return new Promise<HandlerOutcome>(() => {});
    }, { concurrency: 1 });
    await until(async () => started, 'delivery');
    const before = Date.now();
    await subscription.close();
    expect(Date.now() - before).toBeGreaterThanOrEqual(90);
    expect(await queue.status(id)).toMatchObject({ state: 'PENDING', attempts: 0 });
    expect(await queue.depth('a')).toBe(1);
  });

  it('prunes finished statuses older than the retention, keeping pending ones', async () => {
    queue = await LocalQueue.open({ dir, retentionMs: 200, pruneIntervalMs: 50 });
    const done = await queue.enqueue({ app: 'a', event: 'e', data: Buffer.alloc(0), headers: {}, maxAttempts: 1 });
    const dead = await queue.enqueue({ app: 'a', event: 'bad', data: Buffer.alloc(0), headers: {}, maxAttempts: 1 });
    const subscription = queue.subscribe('a', async (event) =>
      event.event === 'bad' ? { kind: 'failed', error: 'no', retry: false } : { kind: 'completed', result: Buffer.from('r') },
    { concurrency: 2 });
    await until(async () => (await queue.status(dead.id))?.state === 'FAILED' && (await queue.status(done.id))?.state === 'COMPLETED', 'both finished');
    await subscription.close();
    const waiting = await queue.enqueue({ app: 'a', event: 'e', data: Buffer.alloc(0), headers: {}, maxAttempts: 1 });
    await sleep(100);
    expect(await queue.status(done.id)).toBeDefined();
    expect(await queue.deadLetters('a')).toHaveLength(1);
    await until(async () => (await queue.status(done.id)) === undefined && (await queue.status(dead.id)) === undefined, 'pruning');
    expect(await queue.deadLetters()).toEqual([]);
    expect((await queue.status(waiting.id))!.state).toBe('PENDING');
    // The pruned id is free again.
    expect((await queue.enqueue({ id: done.id, app: 'a', event: 'e', data: Buffer.alloc(0), headers: {}, maxAttempts: 1 })).duplicate).toBe(false);
  });

  it('keeps finished events finished across a clean reopen', async () => {
    queue = await LocalQueue.open({ dir });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await queue.enqueue({ app: 'a', event: 'e', data: Buffer.from([i]), headers: {}, maxAttempts: 1 })).id);
    const subscription = queue.subscribe('a', async () => ({ kind: 'completed', result: Buffer.alloc(0) }), { concurrency: 1 });
    await until(async () => (await queue.depth('a')) === 0 && (await queue.status(ids[2]!))?.state === 'COMPLETED', 'drain');
    await subscription.close();
    await queue.close();
    queue = await LocalQueue.open({ dir });
    expect(await queue.depth('a')).toBe(0);
    for (const id of ids) expect((await queue.status(id))!.state).toBe('COMPLETED');
  });
});
