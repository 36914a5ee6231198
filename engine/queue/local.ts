import { resolve } from 'node:path';
import { EngineError, InvalidInputError, NotFoundError, OverloadError } from '../errors/index.js';
import type { LongTimer } from '../util/timers.js';
import { retryDelayMs } from './backoff.js';
import { newEventId } from './ids.js';
import { ReadyHeap } from './local-heap.js';
import { resolveLocalQueueOptions, type LocalQueueOptions } from './local-options.js';
import { asBuffer, checkEnqueueInput, checkOutcome, toStatus } from './local-records.js';
import { LocalStore, type StoredEvent } from './local-store.js';
import { LocalSubscription, type DeliveryCore, type LocalDelivery } from './local-subscription.js';
import { repeatEvery } from './repeat.js';
import { LEASE_EXPIRED_ERROR } from './types.js';
import type { EnqueueInput, EnqueueResult, EventHandler, EventStatus, HandlerOutcome, Queue, SubscribeOptions, Subscription } from './types.js';

export { DEFAULT_LOCAL_QUEUE_OPTIONS, resolveLocalQueueOptions, type LocalQueueOptions } from './local-options.js';

export { LEASE_EXPIRED_ERROR };
export const INTERRUPTED_ERROR = 'interrupted: the engine stopped while processing';

interface AppState {
  /** Every PENDING event of the app (due or delayed): its size is the depth. */
  readonly ready: ReadyHeap;
  readonly subscriptions: Set<LocalSubscription>;
}

/**
 * The embedded durable queue: events in LMDB under `dir`, the order of PENDING events in memory
 * (rebuilt from the `active` index at open). One process owns a queue directory at a time.
 *
 * Leases: an event stays PROCESSING, however long its handler takes, for as long as the handler
 * runs in this process; only the event's own timeout (enforced by the handler, e.g. the engine's
 * request-timeout) ends a live handler. The process is the only node, so its leases end with it:
 * the next open finds the events it left PROCESSING, counts that attempt and redelivers them.
 */
export class LocalQueue implements Queue {
  readonly kind = 'local';
  /** Recovery treats every PROCESSING event as orphaned, so two queues must never share a directory. */
  private static readonly openDirs = new Set<string>();
  private dir = '';
  private readonly apps = new Map<string, AppState>();
  private readonly inflight = new Map<string, LocalDelivery>();
  /** Enqueues with a client id not yet committed, so a concurrent duplicate waits for the first. */
  private readonly committing = new Map<string, Promise<void>>();
  private seq = 0;
  private closed = false;
  private closing: Promise<void> | undefined;
  private pruneTimer: LongTimer | undefined;
  /** What subscriptions call back into; kept off the public surface. */
  private readonly core: DeliveryCore = {
    take: (app, now) => this.take(app, now),
    settle: (delivery, outcome) => this.settle(delivery, outcome),
    abort: (delivery, reason) => this.abort(delivery, reason),
    release: (delivery) => this.release(delivery),
    detach: (subscription) => this.detach(subscription),
  };

  private constructor(
    private readonly store: LocalStore,
    readonly options: Readonly<LocalQueueOptions>,
  ) {}

  static async open(options: { dir: string } & Partial<LocalQueueOptions>): Promise<LocalQueue> {
    const { dir, ...rest } = options;
    if (typeof dir !== 'string' || dir.length === 0) {
      throw new InvalidInputError('invalid_argument', 'queue option dir is empty: expected a directory path', { field: 'queue.dir' });
    }
    const resolvedOptions = Object.freeze(resolveLocalQueueOptions(rest));
    const path = resolve(dir);
    if (LocalQueue.openDirs.has(path)) {
      throw new EngineError('queue_error', `queue directory ${path} is already open in this process: one queue owns a directory`);
    }
    const queue = new LocalQueue(LocalStore.open(path), resolvedOptions);
    queue.dir = path;
    LocalQueue.openDirs.add(path);
    try {
      await queue.recover();
      await queue.prune();
    } catch (error) {
      await queue.close().catch(() => undefined);
      throw new EngineError('queue_error', `cannot recover the queue in ${path}: ${(error as Error).message}`, { cause: error });
    }
    queue.startTimers();
    return queue;
  }

  async enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    this.checkOpen();
    const maxAttempts = checkEnqueueInput(input, this.options.defaultMaxAttempts);
    this.store.checkHealthy();
    if (input.id !== undefined) {
      const pending = this.committing.get(input.id);
      if (pending) {
        await pending;
        return { id: input.id, duplicate: true };
      }
      if (this.store.get(input.id)) return { id: input.id, duplicate: true };
    }
    const now = Date.now();
    const id = input.id ?? newEventId(now);
    const record: StoredEvent = {
      id,
      app: input.app,
      event: input.event,
      data: asBuffer(input.data),
      headers: { ...input.headers },
      state: 'PENDING',
      attempts: 0,
      maxAttempts,
      resultTruncated: false,
      createdAt: now,
      updatedAt: now,
      notBefore: Math.max(now, input.notBefore ?? 0),
      seq: this.seq++,
    };
    const write = this.store.insert(record);
    if (input.id !== undefined) this.committing.set(id, write);
    try {
      await write;
    } catch (error) {
      throw new EngineError('queue_error', `cannot persist event ${id}: ${(error as Error).message}`, { cause: error });
    } finally {
      if (input.id !== undefined) this.committing.delete(id);
    }
    this.makeReady(record);
    return { id, duplicate: false };
  }

  async status(id: string): Promise<EventStatus | undefined> {
    this.checkOpen();
    const record = this.store.get(id);
    return record && toStatus(record);
  }

  subscribe(app: string, handler: EventHandler, options: SubscribeOptions): Subscription {
    this.checkOpen();
    const concurrency = options?.concurrency;
    if (typeof concurrency !== 'number' || !Number.isInteger(concurrency) || concurrency < 1) {
      throw new InvalidInputError('invalid_argument', `subscribe concurrency is ${JSON.stringify(concurrency)}: expected an integer >= 1`, {
        field: 'concurrency',
      });
    }
    const subscription = new LocalSubscription(this.core, app, handler, concurrency, this.options.closeTimeoutMs);
    this.app(app).subscriptions.add(subscription);
    subscription.pump();
    return subscription;
  }

  async depth(app: string): Promise<number> {
    return this.apps.get(app)?.ready.size ?? 0;
  }

  async deadLetters(app?: string): Promise<EventStatus[]> {
    this.checkOpen();
    await this.store.committed();
    return this.store.deadLetters(app).map(toStatus);
  }

  async redrive(id: string): Promise<EventStatus> {
    this.checkOpen();
    const previous = this.store.get(id);
    if (!previous) throw new NotFoundError('event_id_not_found', `event ${id} not found`);
    if (previous.state !== 'FAILED') {
      throw new InvalidInputError('invalid_argument', `event ${id} is ${previous.state}: only FAILED events can be redriven`, { field: 'id' });
    }
    const now = Date.now();
    const { doneAt: _doneAt, ...rest } = previous;
    const record: StoredEvent = { ...rest, state: 'PENDING', attempts: 0, updatedAt: now, notBefore: now, seq: this.seq++ };
    await this.store.revive(previous, record);
    this.makeReady(record);
    return toStatus(record);
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- DeliveryCore: called by subscriptions ----

  private take(app: string, now: number): LocalDelivery | { dueAt: number } | undefined {
    const ready = this.apps.get(app)?.ready;
    if (!ready) return undefined;
    for (;;) {
      const next = ready.peek();
      if (!next) return undefined;
      if (next.notBefore > now) return { dueAt: next.notBefore };
      ready.pop();
      const record = this.store.get(next.id);
      // Defensive: an entry that no longer matches its record is stale and skipped.
      if (!record || record.state !== 'PENDING' || record.seq !== next.seq || record.notBefore !== next.notBefore) continue;
      const processing: StoredEvent = { ...record, state: 'PROCESSING', attempts: record.attempts + 1, updatedAt: now };
      const persisted = this.store.update(processing);
      const delivery: LocalDelivery = {
        id: record.id,
        event: {
          id: record.id,
          app: record.app,
          event: record.event,
          data: record.data ?? Buffer.alloc(0),
          headers: { ...record.headers },
          attempt: processing.attempts,
          maxAttempts: record.maxAttempts,
          createdAt: record.createdAt,
        },
        controller: new AbortController(),
        persisted,
        closing: false,
      };
      this.inflight.set(record.id, delivery);
      return delivery;
    }
  }

  private settle(delivery: LocalDelivery, raw: HandlerOutcome): void {
    if (!this.owns(delivery)) return;
    const outcome = checkOutcome(raw);
    const record = this.store.get(delivery.id)!;
    const now = Date.now();
    if (outcome.kind === 'completed') {
      const result = asBuffer(outcome.result);
      const truncated = result.length > this.options.maxResultBytes;
      const { data: _data, ...rest } = record;
      this.finish({ ...rest, state: 'COMPLETED', result: truncated ? undefined : Buffer.from(result), resultTruncated: truncated, updatedAt: now });
    } else if (outcome.kind === 'released' || delivery.closing) {
      this.requeue({ ...record, attempts: record.attempts - 1 }, now, outcome.kind === 'released' ? outcome.delayMs : 0);
    } else if (!outcome.retry || record.attempts >= record.maxAttempts) {
      this.finish({ ...record, state: 'FAILED', lastError: outcome.error, updatedAt: now });
    } else {
      this.requeue({ ...record, lastError: outcome.error }, now, retryDelayMs(record.attempts, this.options));
    }
  }

  private abort(delivery: LocalDelivery, reason: string): void {
    if (this.inflight.get(delivery.id) !== delivery) return;
    delivery.closing = true;
    delivery.controller.abort(new EngineError('shutting_down', reason));
  }

  private release(delivery: LocalDelivery): void {
    if (!this.owns(delivery)) return;
    const record = this.store.get(delivery.id)!;
    this.requeue({ ...record, attempts: record.attempts - 1 }, Date.now(), 0);
  }

  private detach(subscription: LocalSubscription): void {
    this.apps.get(subscription.app)?.subscriptions.delete(subscription);
  }

  // ---- internals ----

  /** Takes a delivery out of the in-flight set if it is still the current one for its event. */
  private owns(delivery: LocalDelivery): boolean {
    if (this.inflight.get(delivery.id) !== delivery) return false;
    this.inflight.delete(delivery.id);
    return true;
  }

  private requeue(record: StoredEvent, now: number, delayMs: number): void {
    const pending: StoredEvent = { ...record, state: 'PENDING', updatedAt: now, notBefore: now + delayMs };
    this.store.update(pending);
    this.makeReady(pending);
  }

  private finish(record: StoredEvent): void {
    this.store.finish({ ...record, doneAt: record.updatedAt });
  }

  private makeReady(record: StoredEvent): void {
    const state = this.app(record.app);
    state.ready.push({ id: record.id, notBefore: record.notBefore, seq: record.seq });
    if (this.closed) return;
    for (const subscription of state.subscriptions) subscription.pump();
  }

  private app(name: string): AppState {
    let state = this.apps.get(name);
    if (!state) {
      state = { ready: new ReadyHeap(), subscriptions: new Set() };
      this.apps.set(name, state);
    }
    return state;
  }

  /** Loads PENDING events into memory; events left PROCESSING by a dead process count that attempt. */
  private async recover(): Promise<void> {
    const now = Date.now();
    const records: StoredEvent[] = [];
    for (const id of this.store.activeIds()) {
      const record = this.store.get(id);
      if (!record || record.state === 'COMPLETED' || record.state === 'FAILED') this.store.forgetActive(id);
      else records.push(record);
    }
    this.seq = records.reduce((max, r) => Math.max(max, r.seq + 1), 0);
    for (const record of records) {
      if (record.state === 'PENDING') this.makeReady(record);
      else this.interrupted(record, now, INTERRUPTED_ERROR);
    }
    await this.store.committed();
  }

  /** A PROCESSING event whose handler will never report: its attempt counts. */
  private interrupted(record: StoredEvent, now: number, error: string): void {
    if (record.attempts >= record.maxAttempts) this.finish({ ...record, state: 'FAILED', lastError: error, updatedAt: now });
    else this.requeue({ ...record, lastError: error }, now, 0);
  }

  private async prune(): Promise<void> {
    await this.store.prune(Date.now() - this.options.retentionMs);
  }

  private startTimers(): void {
    this.pruneTimer = repeatEvery(this.options.pruneIntervalMs, () => this.prune().catch(() => undefined)).unref();
  }

  private checkOpen(): void {
    if (this.closed) throw new OverloadError('shutting_down', 'the queue is closed');
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.pruneTimer?.clear();
    const subscriptions = [...this.apps.values()].flatMap((state) => [...state.subscriptions]);
    await Promise.all(subscriptions.map((subscription) => subscription.close('queue closed')));
    try {
      await this.store.close();
    } finally {
      LocalQueue.openDirs.delete(this.dir);
    }
  }
}
