import type { Consumer, JsMsg } from '@nats-io/jetstream';
import { NATS_RETRY_DEFAULTS } from '../nats/retry.js';
import { sleep } from '../util/timers.js';
import { retryDelayMs } from './backoff.js';
import { checkOutcome } from './local-records.js';
import { traceIdField } from './jetstream-status.js';
import type { StatusStore, StoredStatus } from './jetstream-status.js';
import { repeatEvery } from './repeat.js';
import { LEASE_EXPIRED_ERROR, type EventHandler, type HandlerOutcome, type QueueOptions, type QueuedEvent, type Subscription } from './types.js';

export const Header = {
  id: 'Cocaine-Event-Id',
  event: 'Cocaine-Event',
  maxAttempts: 'Cocaine-Max-Attempts',
  notBefore: 'Cocaine-Not-Before',
  createdAt: 'Cocaine-Created',
  headers: 'Cocaine-Headers',
  redriven: 'Cocaine-Redriven',
} as const;

export interface SubscriptionCore {
  statuses: StatusStore;
  options: QueueOptions;
  /** Publishes the dead-letter copy; returns its sequence in the DLQ stream. */
  deadLetter(msg: JsMsg, status: StoredStatus): Promise<number>;
  processing: Map<string, number>;
  /** True once the NATS connection is closed for good: the pull loop ends. */
  connectionClosed(): boolean;
}

const FETCH_EXPIRES_MS = 1_000;

/** Where one delivery stands, for its lease: in the handler (renewed without bound) or not, since when. */
interface LeasePhase {
  inHandler: boolean;
  since: number;
}

/**
 * One app's consumption on one node: pulls at most `concurrency` messages from the app's durable
 * consumer (shared by every node), runs the handler, and settles each message: ack when done or
 * dead-lettered, nak with backoff to retry, nak without counting when released or not yet due.
 */
export class JetStreamSubscription implements Subscription {
  private closed = false;
  private inFlight = 0;
  private readonly controllers = new Set<AbortController>();
  private readonly settled = new Set<Promise<void>>();
  private slotWaiter: (() => void) | undefined;
  readonly loop: Promise<void>;

  constructor(
    private readonly app: string,
    private readonly consumer: Consumer,
    private readonly handler: EventHandler,
    private readonly concurrency: number,
    private readonly core: SubscriptionCore,
  ) {
    this.loop = this.run().catch(() => undefined);
  }

  private async run(): Promise<void> {
    while (!this.closed && !this.core.connectionClosed()) {
      // Pull in batches (a quarter of the slots at least) rather than one message per freed slot.
      if (this.inFlight > this.concurrency - Math.ceil(this.concurrency / 4)) {
        await new Promise<void>((resolve) => (this.slotWaiter = resolve));
        continue;
      }
      try {
        const messages = await this.consumer.fetch({ max_messages: this.concurrency - this.inFlight, expires: FETCH_EXPIRES_MS });
        for await (const msg of messages) this.dispatch(msg);
      } catch {
        // A failover (server stopped, leader moving): pull again shortly.
        await sleep(250);
      }
    }
  }

  private dispatch(msg: JsMsg): void {
    if (this.closed) {
      msg.nak(); // pulled after close: give it straight back
      return;
    }
    this.inFlight++;
    const work = this.handle(msg)
      .catch(() => {
        // NATS failed us mid-way (a failover longer than the retries): the event comes back, by
        // this nak or, when the connection is gone, after ack wait.
        try {
          msg.nak(1_000);
        } catch {
          // closed connection
        }
      })
      .finally(() => {
        this.inFlight--;
        this.settled.delete(work);
        const waiter = this.slotWaiter;
        this.slotWaiter = undefined;
        waiter?.();
      });
    this.settled.add(work);
  }

  private async handle(msg: JsMsg): Promise<void> {
    const headers = msg.headers;
    const id = headers?.get(Header.id) ?? '';
    const notBefore = Number(headers?.get(Header.notBefore) || 0);
    const now = Date.now();
    if (notBefore > now) {
      // Server 2.9 has no scheduled delivery: hold the message in ack-pending until it is due.
      msg.nak(notBefore - now);
      return;
    }
    // The lease: in-progress acks keep the delivery ours for as long as this node runs the handler,
    // however long it takes; only the event's own timeout ends a live handler. A node that dies (or
    // loses NATS) stops sending them and the server redelivers the event after ack wait. Reading the
    // status before and settling after are NATS requests, retried through a failover for a bounded
    // time: the lease covers them for at most that long, so a request that never answers cannot
    // hold the event forever (it is redelivered, and its next delivery finds what was recorded).
    const phase: LeasePhase = { inHandler: false, since: Date.now() };
    const lease = repeatEvery(this.core.options.ackWaitMs / 3, () => {
      if (!phase.inHandler && Date.now() - phase.since > NATS_RETRY_DEFAULTS.budgetMs) return;
      try {
        msg.working();
      } catch {
        // the connection closed under the handler: the event is redelivered elsewhere after ack wait
      }
    });
    try {
      await this.attempt(msg, id, now, phase);
    } finally {
      lease.clear();
    }
  }

  /** Reads what earlier attempts left, runs the handler and settles the message. */
  private async attempt(msg: JsMsg, id: string, now: number, phase: LeasePhase): Promise<void> {
    const headers = msg.headers;
    const { statuses, options } = this.core;
    // A first delivery has only its PENDING status from enqueue (one KV read saved per event);
    // redeliveries and redriven copies read what earlier attempts left.
    const previous = msg.redelivered || headers?.has(Header.redriven) ? await statuses.get(id) : undefined;
    if (previous && (previous.state === 'COMPLETED' || previous.state === 'FAILED')) {
      await msg.ackAck(); // a redelivery of an event already settled (its ack was lost)
      return;
    }
    const maxAttempts = Number(headers?.get(Header.maxAttempts) || options.defaultMaxAttempts);
    const createdAt = Number(headers?.get(Header.createdAt) || now);
    const event = headers?.get(Header.event) ?? '';
    let base: StoredStatus = previous ?? { id, app: this.app, event, state: 'PENDING', attempts: 0, maxAttempts, resultTruncated: false, createdAt, updatedAt: now, ...traceIdField(headers?.get(Header.headers)) };
    if (previous?.state === 'PROCESSING') {
      // Redelivered after ack wait: the node that ran it died (or lost NATS); that attempt counts.
      base = { ...previous, lastError: LEASE_EXPIRED_ERROR };
      if (previous.attempts >= previous.maxAttempts) {
        await this.settle(msg, base, { kind: 'failed', error: LEASE_EXPIRED_ERROR, retry: false });
        return;
      }
    }
    const attempt = base.attempts + 1;
    // Not awaited: the handler needs nothing from it, and the settling put below, sent later on the
    // same connection, lands after it. It is flushed in this turn of the event loop, long before a
    // real handler ends, so a node that dies mid-event almost always leaves PROCESSING behind and
    // the redelivery counts the attempt (if not, that one attempt goes uncounted).
    statuses.putWithoutAck({ ...base, state: 'PROCESSING', attempts: attempt });
    const processing = this.core.processing;
    processing.set(this.app, (processing.get(this.app) ?? 0) + 1);
    try {
      phase.inHandler = true;
      const outcome = await this.runHandler(msg, { id, app: this.app, event, data: Buffer.from(msg.data), headers: {}, attempt, maxAttempts, createdAt });
      phase.inHandler = false;
      phase.since = Date.now();
      // Connection gone for good: nothing can be recorded; the event is redelivered after ack wait.
      if (this.core.connectionClosed()) return;
      await this.settle(msg, { ...base, attempts: attempt }, outcome);
    } finally {
      // Only now: until the ack is confirmed the message is still in the stream (see depth()).
      processing.set(this.app, (processing.get(this.app) ?? 1) - 1);
    }
  }

  private async runHandler(msg: JsMsg, queued: QueuedEvent): Promise<HandlerOutcome> {
    const controller = new AbortController();
    this.controllers.add(controller);
    let outcome: HandlerOutcome;
    try {
      queued.headers = JSON.parse(msg.headers?.get(Header.headers) || '{}') as Record<string, string>;
      outcome = checkOutcome(await this.handler(queued, controller.signal));
    } catch (error) {
      outcome = { kind: 'failed', error: (error as Error)?.message ?? String(error), retry: true };
    } finally {
      this.controllers.delete(controller);
    }
    if (controller.signal.aborted && outcome.kind !== 'completed') outcome = { kind: 'released', delayMs: 0 };
    return outcome;
  }

  private async settle(msg: JsMsg, status: StoredStatus, outcome: HandlerOutcome): Promise<void> {
    const { statuses, options } = this.core;
    switch (outcome.kind) {
      case 'completed': {
        const small = outcome.result.length <= options.maxResultBytes;
        await statuses.put({
          ...status,
          state: 'COMPLETED',
          result: small ? Buffer.from(outcome.result).toString('base64') : undefined,
          resultTruncated: !small,
        });
        // Confirmed ack: once settle() returns the work-queue stream no longer holds the message.
        await msg.ackAck();
        return;
      }
      case 'released':
        await statuses.put({ ...status, state: 'PENDING', attempts: status.attempts - 1 });
        msg.nak(outcome.delayMs);
        return;
      case 'failed':
        if (outcome.retry && status.attempts < status.maxAttempts) {
          await statuses.put({ ...status, state: 'PENDING', lastError: outcome.error });
          msg.nak(retryDelayMs(status.attempts, options));
          return;
        }
        {
          const failed: StoredStatus = { ...status, state: 'FAILED', lastError: outcome.error };
          failed.dlqSeq = await this.core.deadLetter(msg, failed);
          await statuses.put(failed);
          await msg.ackAck();
        }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const controller of this.controllers) controller.abort(new Error('the subscription closed'));
    const waiter = this.slotWaiter;
    this.slotWaiter = undefined;
    waiter?.();
    await Promise.allSettled([...this.settled]);
  }
}
