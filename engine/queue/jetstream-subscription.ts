import type { Consumer, JsMsg } from '@nats-io/jetstream';
import { retryDelayMs } from './backoff.js';
import { checkOutcome } from './local-records.js';
import type { StatusStore, StoredStatus } from './jetstream-status.js';
import type { EventHandler, HandlerOutcome, QueueOptions, QueuedEvent, Subscription } from './types.js';

export const Header = {
  id: 'Cocaine-Event-Id',
  event: 'Cocaine-Event',
  maxAttempts: 'Cocaine-Max-Attempts',
  notBefore: 'Cocaine-Not-Before',
  createdAt: 'Cocaine-Created',
  headers: 'Cocaine-Headers',
} as const;

export interface SubscriptionCore {
  statuses: StatusStore;
  options: QueueOptions;
  /** Publishes the dead-letter copy; returns its sequence in the DLQ stream. */
  deadLetter(msg: JsMsg, status: StoredStatus): Promise<number>;
  processing: Map<string, number>;
}

const FETCH_EXPIRES_MS = 1_000;

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
    while (!this.closed) {
      if (this.inFlight >= this.concurrency) {
        await new Promise<void>((resolve) => (this.slotWaiter = resolve));
        continue;
      }
      let messages;
      try {
        messages = await this.consumer.fetch({ max_messages: this.concurrency - this.inFlight, expires: FETCH_EXPIRES_MS });
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 250));
        continue;
      }
      for await (const msg of messages) {
        if (this.closed) {
          msg.nak();
          continue;
        }
        this.inFlight++;
        const work = this.handle(msg).finally(() => {
          this.inFlight--;
          this.settled.delete(work);
          const waiter = this.slotWaiter;
          this.slotWaiter = undefined;
          waiter?.();
        });
        this.settled.add(work);
      }
    }
  }

  private async handle(msg: JsMsg): Promise<void> {
    const headers = msg.headers;
    const id = headers?.get(Header.id) ?? '';
    const notBefore = Number(headers?.get(Header.notBefore) || 0);
    const now = Date.now();
    if (notBefore > now) {
      msg.nak(notBefore - now);
      return;
    }
    const { statuses, options } = this.core;
    const previous = await statuses.get(id);
    if (previous && (previous.state === 'COMPLETED' || previous.state === 'FAILED')) {
      msg.ack(); // a redelivery of an event already settled (its ack was lost)
      return;
    }
    const maxAttempts = Number(headers?.get(Header.maxAttempts) || options.defaultMaxAttempts);
    const createdAt = Number(headers?.get(Header.createdAt) || now);
    const event = headers?.get(Header.event) ?? '';
    const base: StoredStatus = previous ?? { id, app: this.app, event, state: 'PENDING', attempts: 0, maxAttempts, resultTruncated: false, createdAt, updatedAt: now };
    const attempt = base.attempts + 1;
    await statuses.put({ ...base, state: 'PROCESSING', attempts: attempt });
    this.core.processing.set(this.app, (this.core.processing.get(this.app) ?? 0) + 1);
    const controller = new AbortController();
    this.controllers.add(controller);
    const working = setInterval(() => msg.working(), Math.max(100, options.ackWaitMs / 3));
    let outcome: HandlerOutcome;
    try {
      const queued: QueuedEvent = {
        id,
        app: this.app,
        event,
        data: Buffer.from(msg.data),
        headers: JSON.parse(headers?.get(Header.headers) || '{}') as Record<string, string>,
        attempt,
        maxAttempts,
        createdAt,
      };
      outcome = checkOutcome(await this.handler(queued, controller.signal));
    } catch (error) {
      outcome = { kind: 'failed', error: (error as Error)?.message ?? String(error), retry: true };
    } finally {
      clearInterval(working);
      this.controllers.delete(controller);
      this.core.processing.set(this.app, (this.core.processing.get(this.app) ?? 1) - 1);
    }
    if (controller.signal.aborted && outcome.kind !== 'completed') outcome = { kind: 'released', delayMs: 0 };
    await this.settle(msg, { ...base, attempts: attempt }, outcome);
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
        msg.ack();
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
          msg.ack();
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
