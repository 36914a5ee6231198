import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type Consumer,
  type JsMsg,
  type PubAck,
} from '@nats-io/jetstream';
import { headers as natsHeaders, nanos, type NatsConnection } from '@nats-io/transport-node';
import { InvalidInputError, NotFoundError } from '../errors/index.js';
import { connectNats } from '../nats/connection.js';
import { withRetry } from '../nats/retry.js';
import { newEventId } from './ids.js';
import { checkEnqueueInput } from './local-records.js';
import { resolveQueueOptions } from './options.js';
import { sleep } from '../util/timers.js';
import { StatusStore, statusKey, toEventStatus, traceIdField, type StoredStatus } from './jetstream-status.js';
import { traceIdOfHeaders } from '../trace/context.js';
import { Header, JetStreamSubscription } from './jetstream-subscription.js';
import { type EnqueueInput, type EnqueueResult, type EventHandler, type EventStatus, type Queue, type QueueOptions, type SubscribeOptions, type Subscription } from './types.js';

export interface JetStreamQueueOptions extends Partial<QueueOptions> {
  servers: string | string[];
  prefix?: string;
  replicas?: number;
  /**
   * An open connection to use instead of dialing `servers` (one connection per engine process);
   * the queue does not close it.
   */
  connection?: NatsConnection;
}

const DUPLICATE_WINDOW_MS = 120_000;
const MIN_MAX_ACK_PENDING = 10_000;
/** A repeated client id younger than this is published again (deduplicated by the stream). */
const REPUBLISH_WITHIN_MS = DUPLICATE_WINDOW_MS / 2;

/** Durable names and subject tokens cannot hold dots; app names can (`=` never appears in names). */
const durableToken = (app: string) => app.replaceAll('.', '=');

/**
 * Fire-and-forget events on NATS JetStream (docs/nats-api.md): a work-queue stream with one durable
 * consumer per app shared by every node, statuses in KV, failed events in a dead-letter stream.
 *
 * - Delayed events: nats-server 2.9 has no scheduled delivery, so a message pulled before its
 *   notBefore is nak'ed with the time left (not counted as an attempt). Until due it occupies one
 *   of the consumer's max_ack_pending slots, which is therefore large.
 * - Attempts are counted in KV, not by the server (max_deliver -1): a redelivery that finds the
 *   status PROCESSING means the node running it died (ack wait passed without msg.working()), and
 *   that attempt counts, as in the local backend.
 * - depth(app) is the app's message count in the work-queue stream less the events being handled
 *   on this node: exact with one node; with several it also counts the events other nodes are
 *   running (the server cannot tell them from naked, backing-off ones).
 */
export class JetStreamQueue implements Queue {
  readonly kind = 'jetstream';
  private readonly subscriptions = new Set<JetStreamSubscription>();
  private readonly processing = new Map<string, number>();
  private closed = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly statuses: StatusStore,
    private readonly prefix: string,
    readonly options: QueueOptions,
    private readonly ownsConnection: boolean,
  ) {}

  static async open(options: JetStreamQueueOptions): Promise<JetStreamQueue> {
    const { servers, prefix = 'cocaine', replicas = 1, connection, ...rest } = options;
    const queueOptions: QueueOptions = Object.freeze(resolveQueueOptions(rest));
    const nc = connection ?? (await connectNats(servers, { name: 'cocaine-engine queue' }));
    try {
      const jsm = await jetstreamManager(nc);
      const upper = prefix.toUpperCase().replace(/[^A-Z0-9_-]/g, '_');
      await ensureStream(jsm, {
        name: `${upper}_EVENTS`,
        subjects: [`${prefix}.events.>`],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        num_replicas: replicas,
        duplicate_window: nanos(DUPLICATE_WINDOW_MS),
      });
      await ensureStream(jsm, { name: `${upper}_DLQ`, subjects: [`${prefix}.dlq.>`], storage: StorageType.File, num_replicas: replicas });
      const statuses = await StatusStore.open(nc, prefix, replicas);
      return new JetStreamQueue(nc, jetstream(nc), jsm, statuses, prefix, queueOptions, connection === undefined);
    } catch (error) {
      if (connection === undefined) await nc.close();
      throw error;
    }
  }

  private get eventsStream(): string {
    return `${this.prefix.toUpperCase().replace(/[^A-Z0-9_-]/g, '_')}_EVENTS`;
  }

  private get dlqStream(): string {
    return `${this.prefix.toUpperCase().replace(/[^A-Z0-9_-]/g, '_')}_DLQ`;
  }

  /** One subject per event (`<prefix>.events.<id token>.<app>`): a PENDING event is found by its id. */
  private subject(app: string, id: string): string {
    return `${this.idSubject(id)}.${app}`;
  }

  private idSubject(id: string): string {
    return `${this.prefix}.events.${statusKey(id)}`;
  }

  /** The app's durable consumer, shared by every node. */
  private durableName(app: string): string {
    return `${this.prefix}-${durableToken(app)}`;
  }

  /** The app's events, whatever their id. */
  private appFilter(app: string): string {
    return `${this.prefix}.events.*.${app}`;
  }

  async enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    const maxAttempts = checkEnqueueInput(input, this.options.defaultMaxAttempts);
    const id = input.id ?? newEventId();
    const now = Date.now();
    const traceId = traceIdOfHeaders(input.headers);
    const status: StoredStatus = { id, app: input.app, event: input.event, state: 'PENDING', attempts: 0, maxAttempts, resultTruncated: false, createdAt: now, updatedAt: now, ...(traceId ? { traceId } : {}) };
    // A fresh id needs no status write: until its first attempt the message itself is the status
    // (see status()). A client id is recorded first, so a repeat stays a duplicate past the stream's
    // deduplication window.
    if (input.id !== undefined && !(await this.statuses.create(status))) {
      // The first enqueue may have failed between its status and its publish (the caller retries):
      // publish again while the stream still deduplicates the id, so the event is never lost.
      const existing = await this.statuses.get(id);
      if (existing?.state === 'PENDING' && existing.attempts === 0 && now - existing.createdAt < REPUBLISH_WITHIN_MS) {
        await this.publish(input, { ...existing, updatedAt: now });
      }
      return { id, duplicate: true };
    }
    const ack = await this.publish(input, status);
    return { id, duplicate: ack.duplicate };
  }

  private async publish(input: EnqueueInput, status: StoredStatus): Promise<PubAck> {
    const { id, maxAttempts, createdAt } = status;
    const h = natsHeaders();
    h.set(Header.id, id);
    h.set(Header.event, input.event);
    h.set(Header.maxAttempts, String(maxAttempts));
    h.set(Header.createdAt, String(createdAt));
    if (input.notBefore) h.set(Header.notBefore, String(input.notBefore));
    if (Object.keys(input.headers).length > 0) h.set(Header.headers, JSON.stringify(input.headers));
    return withRetry(`publishing event ${id}`, () => this.js.publish(this.subject(input.app, id), input.data, { msgID: id, headers: h }));
  }

  /**
   * KV holds the status from the first attempt on; before it, the message in the work stream is the
   * status. The stream is read first: a message gone by then was acked, and its final status was
   * stored before the ack, so the KV read after it sees it.
   */
  async status(id: string): Promise<EventStatus | undefined> {
    const message = await withRetry(`reading the event ${id}`, () =>
      this.jsm.streams.getMessage(this.eventsStream, { last_by_subj: `${this.idSubject(id)}.>` }),
    );
    const stored = await this.statuses.get(id);
    if (stored) return toEventStatus(stored);
    if (!message) return undefined;
    const headers = message.header;
    const createdAt = Number(headers.get(Header.createdAt) || message.timestamp);
    return toEventStatus({
      id,
      app: message.subject.slice(this.idSubject(id).length + 1),
      event: headers.get(Header.event),
      state: 'PENDING',
      attempts: 0,
      maxAttempts: Number(headers.get(Header.maxAttempts) || this.options.defaultMaxAttempts),
      resultTruncated: false,
      createdAt,
      updatedAt: createdAt,
      ...traceIdField(headers.get(Header.headers)),
    });
  }

  subscribe(app: string, handler: EventHandler, options: SubscribeOptions): Subscription {
    let subscription: JetStreamSubscription | undefined;
    let closed = false;
    const ready = (async () => {
      const durable = this.durableName(app);
      const consumer = await this.ensureConsumer(app, durable, options.concurrency, () => closed);
      if (closed || !consumer) return;
      subscription = new JetStreamSubscription(app, consumer, handler, Math.max(1, options.concurrency), {
        statuses: this.statuses,
        options: this.options,
        processing: this.processing,
        deadLetter: (msg, status) => this.deadLetter(msg, status),
        connectionClosed: () => this.nc.isClosed(),
      });
      this.subscriptions.add(subscription);
    })();
    return {
      close: async () => {
        closed = true;
        await ready.catch(() => undefined);
        if (subscription) {
          this.subscriptions.delete(subscription);
          await subscription.close();
        }
      },
    };
  }

  /**
   * The app's durable consumer, shared by every node: created by the first, its ack wait and
   * ack-pending limit updated when a node comes with other options. Retried until it exists (NATS
   * may be failing over) or the subscription closes.
   */
  private async ensureConsumer(app: string, durable: string, concurrency: number, closed: () => boolean): Promise<Consumer | undefined> {
    const config = {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: this.appFilter(app),
      ack_wait: nanos(this.options.ackWaitMs),
      // Our attempt accounting (in KV) decides when an event is dead, not the server.
      max_deliver: -1,
      // Every node's in-flight events plus the delayed and backing-off ones the server holds.
      max_ack_pending: Math.max(MIN_MAX_ACK_PENDING, concurrency * 64),
    };
    for (let delay = 100; !closed() && !this.nc.isClosed(); delay = Math.min(2_000, delay * 2)) {
      try {
        try {
          await this.jsm.consumers.add(this.eventsStream, config);
        } catch (error) {
          const info = await this.jsm.consumers.info(this.eventsStream, durable).catch(() => undefined);
          if (!info) throw error;
          if (info.config.ack_wait !== config.ack_wait || (info.config.max_ack_pending ?? 0) < config.max_ack_pending) {
            await this.jsm.consumers.update(this.eventsStream, durable, { ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending });
          }
        }
        return await this.js.consumers.get(this.eventsStream, durable);
      } catch {
        await sleep(delay);
      }
    }
    return undefined;
  }

  private async deadLetter(msg: JsMsg, status: StoredStatus): Promise<number> {
    const h = natsHeaders();
    for (const [key, values] of msg.headers ?? []) h.set(key, values[0] ?? '');
    h.set('Cocaine-Last-Error', status.lastError ?? '');
    // One id per work-stream message (a redriven event is a new message and may fail again), stable
    // across retries and redeliveries of that message, so the dead letter is written once.
    const msgID = `${status.id}:dlq:${msg.seq}`;
    const ack = await withRetry(`dead-lettering ${status.id}`, () => this.js.publish(`${this.prefix}.dlq.${status.app}`, msg.data, { headers: h, msgID }));
    return ack.seq;
  }

  /** Messages of the app in the work stream, less those being handled here (exact on one node). */
  async depth(app: string): Promise<number> {
    const consumer = await this.jsm.consumers.info(this.eventsStream, this.durableName(app)).catch(() => undefined);
    // Not delivered yet + delivered and not acked (running anywhere, delayed or backing off).
    const stored = consumer ? consumer.num_pending + consumer.num_ack_pending : await this.storedWithoutConsumer(app);
    return Math.max(0, stored - (this.processing.get(app) ?? 0));
  }

  /** No node consumed the app yet: count its messages in the stream (one subject per event). */
  private async storedWithoutConsumer(app: string): Promise<number> {
    const info = await this.jsm.streams.info(this.eventsStream, { subjects_filter: this.appFilter(app) });
    return Object.values(info.state.subjects ?? {}).reduce((sum, count) => sum + count, 0);
  }

  async deadLetters(app?: string): Promise<EventStatus[]> {
    const info = await this.jsm.streams.info(this.dlqStream);
    const statuses: EventStatus[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const message = await this.jsm.streams.getMessage(this.dlqStream, { seq }).catch(() => null);
      if (!message) continue;
      if (app !== undefined && message.subject !== `${this.prefix}.dlq.${app}`) continue;
      const status = await this.status(message.header.get(Header.id) ?? '');
      if (status && status.state === 'FAILED') statuses.push(status);
    }
    return statuses.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  async redrive(id: string): Promise<EventStatus> {
    const stored = await this.statuses.get(id);
    if (!stored || stored.state !== 'FAILED' || stored.dlqSeq === undefined) {
      const state = stored?.state ?? (await this.status(id))?.state;
      if (!state) throw new NotFoundError('event_id_not_found', `no event with id "${id}"`);
      throw new InvalidInputError('invalid_argument', `event "${id}" is ${state}: only FAILED events can be redriven`);
    }
    const message = await this.jsm.streams.getMessage(this.dlqStream, { seq: stored.dlqSeq });
    if (!message) throw new NotFoundError('event_id_not_found', `the dead letter of event "${id}" is gone`);
    const h = natsHeaders();
    for (const [key, values] of message.header) if (key !== 'Cocaine-Last-Error') h.set(key, values[0] ?? '');
    h.set(Header.redriven, '1');
    const redriven: StoredStatus = { ...stored, state: 'PENDING', attempts: 0, dlqSeq: undefined };
    await this.statuses.put(redriven);
    await this.js.publish(this.subject(stored.app, id), message.data, { msgID: `${id}:redrive:${Date.now()}`, headers: h });
    await this.jsm.streams.deleteMessage(this.dlqStream, stored.dlqSeq).catch(() => undefined);
    return toEventStatus({ ...redriven, updatedAt: Date.now() });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const subscriptions = [...this.subscriptions];
    this.subscriptions.clear();
    await Promise.all(subscriptions.map((subscription) => subscription.close()));
    // Outstanding pulls end within their expiry; messages they bring are given back (nak) first.
    await Promise.all(subscriptions.map((subscription) => subscription.loop));
    if (this.ownsConnection && !this.nc.isClosed()) await this.nc.drain().catch(() => undefined);
  }
}

async function ensureStream(jsm: JetStreamManager, config: Parameters<JetStreamManager['streams']['add']>[0]): Promise<void> {
  try {
    await jsm.streams.info(config.name as string);
  } catch {
    await jsm.streams.add(config);
  }
}
