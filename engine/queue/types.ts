export type EventState = 'PENDING' | 'PROCESSING' | 'COMPLETED' | 'FAILED';

export interface EnqueueInput {
  /** Optional client-chosen id; enqueueing the same id twice is idempotent. */
  id?: string;
  app: string;
  event: string;
  data: Buffer;
  headers: Record<string, string>;
  maxAttempts: number;
  /** Earliest time the event may run, epoch ms (0 = now). */
  notBefore?: number;
}

export interface EnqueueResult {
  id: string;
  duplicate: boolean;
}

/** An event handed to a subscriber. */
export interface QueuedEvent {
  id: string;
  app: string;
  event: string;
  data: Buffer;
  headers: Record<string, string>;
  /** 1 for the first delivery. */
  attempt: number;
  maxAttempts: number;
  createdAt: number;
}

export interface EventStatus {
  id: string;
  app: string;
  event: string;
  state: EventState;
  attempts: number;
  maxAttempts: number;
  lastError?: string;
  result?: Buffer;
  resultTruncated: boolean;
  createdAt: number;
  updatedAt: number;
  /** The trace the event belongs to (from its stored `traceparent`; docs/tracing.md), when it has one. */
  traceId?: string;
}

/** What a subscriber did with an event. */
export type HandlerOutcome =
  | { kind: 'completed'; result: Buffer }
  /** `retry: false` fails it at once (e.g. unknown event); else it retries with backoff up to maxAttempts. */
  | { kind: 'failed'; error: string; retry: boolean }
  /** Not attempted (engine overloaded or stopping): back to PENDING after `delayMs`, attempt not counted. */
  | { kind: 'released'; delayMs: number };

export type EventHandler = (event: QueuedEvent, signal: AbortSignal) => Promise<HandlerOutcome>;

export interface SubscribeOptions {
  /** Events of this app handed to the handler at once, at most. */
  concurrency: number;
}

export interface Subscription {
  /** Stops delivering; resolves once in-flight handlers settled (their events are released if aborted). */
  close(): Promise<void>;
}

export interface QueueOptions {
  /** Attempts when the enqueuer does not say. */
  defaultMaxAttempts: number;
  /** Retry delay after attempt n is min(retryMaxDelayMs, retryBaseDelayMs * 2^(n-1)). */
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  /** Results larger than this are not kept (resultTruncated). */
  maxResultBytes: number;
  /**
   * The lease of a PROCESSING event: redelivered when the node running it stops answering for this
   * long (100 ms to 24 h). The lease is renewed for as long as the handler runs, so a slow handler
   * is never cut short by it; only the event's own timeout ends a live handler. JetStream renews
   * with in-progress acks; the local queue's leases end with its process (the next open counts the
   * interrupted attempt and redelivers).
   */
  ackWaitMs: number;
}

/** The last error of an event whose node stopped answering (its lease expired) while running it. */
export const LEASE_EXPIRED_ERROR = 'lease expired: the node running the event stopped answering for ackWaitMs';

export const DEFAULT_QUEUE_OPTIONS: Readonly<QueueOptions> = Object.freeze({
  defaultMaxAttempts: 5,
  retryBaseDelayMs: 200,
  retryMaxDelayMs: 30_000,
  maxResultBytes: 64 * 1024,
  ackWaitMs: 60_000,
});

/**
 * Durable fire-and-forget events with status, retries and dead letters. `enqueue` resolves only
 * once the event is persisted. Every implementation passes test/contracts/queue.contract.ts.
 */
export interface Queue {
  readonly kind: string;
  enqueue(input: EnqueueInput): Promise<EnqueueResult>;
  status(id: string): Promise<EventStatus | undefined>;
  /** Delivers the app's events to `handler`, at most `concurrency` at once, until closed. */
  subscribe(app: string, handler: EventHandler, options: SubscribeOptions): Subscription;
  /** Events of the app waiting to run (PENDING, including delayed ones). */
  depth(app: string): Promise<number>;
  /** FAILED events (dead letters), newest first; all apps when `app` is omitted. */
  deadLetters(app?: string): Promise<EventStatus[]>;
  /** Puts a FAILED event back to PENDING with a fresh attempt budget. */
  redrive(id: string): Promise<EventStatus>;
  close(): Promise<void>;
}
