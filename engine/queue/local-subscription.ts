import { setLongTimeout, type LongTimer } from '../util/timers.js';
import type { EventHandler, HandlerOutcome, QueuedEvent, Subscription } from './types.js';

/** One hand-over of an event to a handler. */
export interface LocalDelivery {
  readonly id: string;
  readonly event: QueuedEvent;
  readonly controller: AbortController;
  /** Resolves once the PROCESSING state (and its counted attempt) is committed. */
  readonly persisted: Promise<void>;
  /** Set when the subscription or queue closes while the handler runs. */
  closing: boolean;
}

/** What a subscription needs from the queue: take due events, report what became of them. */
export interface DeliveryCore {
  /** The app's next due event, marked PROCESSING; or when the next one falls due; or undefined when none waits. */
  take(app: string, now: number): LocalDelivery | { dueAt: number } | undefined;
  settle(delivery: LocalDelivery, outcome: HandlerOutcome): void;
  /** The handler is being aborted because of a close: whatever it returns except `completed` releases the event. */
  abort(delivery: LocalDelivery, reason: string): void;
  /** The handler did not settle in time after an abort: back to PENDING, attempt not counted. */
  release(delivery: LocalDelivery): void;
  detach(subscription: LocalSubscription): void;
}

/**
 * Delivers one app's due events to a handler, at most `concurrency` at once. It is woken by the
 * queue when an event of its app becomes PENDING, and by one timer for the earliest delayed event.
 */
export class LocalSubscription implements Subscription {
  private readonly running = new Map<LocalDelivery, Promise<void>>();
  private timer: LongTimer | undefined;
  private timerAt = Infinity;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly core: DeliveryCore,
    readonly app: string,
    private readonly handler: EventHandler,
    private readonly concurrency: number,
    private readonly closeTimeoutMs: number,
  ) {}

  get inFlight(): number {
    return this.running.size;
  }

  pump(): void {
    while (!this.closed && this.running.size < this.concurrency) {
      const next = this.core.take(this.app, Date.now());
      if (next === undefined) return;
      if ('dueAt' in next) {
        this.wakeAt(next.dueAt);
        return;
      }
      this.run(next);
    }
  }

  close(reason = 'subscription closed'): Promise<void> {
    this.closing ??= this.shutdown(reason);
    return this.closing;
  }

  private async shutdown(reason: string): Promise<void> {
    this.closed = true;
    this.clearTimer();
    this.core.detach(this);
    for (const delivery of this.running.keys()) this.core.abort(delivery, reason);
    if (this.running.size > 0) {
      let timeout: LongTimer | undefined;
      await Promise.race([
        Promise.all(this.running.values()),
        new Promise<void>((resolve) => {
          timeout = setLongTimeout(resolve, this.closeTimeoutMs);
        }),
      ]);
      timeout?.clear();
    }
    for (const delivery of this.running.keys()) this.core.release(delivery);
  }

  private run(delivery: LocalDelivery): void {
    const done = this.invoke(delivery).then(() => {
      this.running.delete(delivery);
      this.pump();
    });
    this.running.set(delivery, done);
  }

  private async invoke(delivery: LocalDelivery): Promise<void> {
    // The attempt is on disk before the handler runs, so an event that crashes the engine every
    // time it runs still uses up its attempts and ends in the dead letters.
    await delivery.persisted;
    let outcome: HandlerOutcome;
    if (delivery.controller.signal.aborted) {
      this.core.settle(delivery, { kind: 'released', delayMs: 0 });
      return;
    }
    try {
      outcome = await this.handler(delivery.event, delivery.controller.signal);
    } catch (error) {
      outcome = { kind: 'failed', error: error instanceof Error ? error.message : String(error), retry: true };
    }
    this.core.settle(delivery, outcome);
  }

  private wakeAt(at: number): void {
    if (this.timer !== undefined && this.timerAt <= at) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = setLongTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.pump();
    }, at - Date.now());
  }

  private clearTimer(): void {
    this.timer?.clear();
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}
