import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { withRetry } from '../nats/retry.js';
import type { EventStatus } from './types.js';
import { traceIdOfHeaders } from '../trace/context.js';

/** An event's status as kept in KV (result base64), plus where its dead letter is. */
export type StoredStatus = Omit<EventStatus, 'result'> & {
  result?: string;
  dlqSeq?: number;
};

const RETENTION_MS = 7 * 24 * 3600 * 1000;

/** Event statuses in the KV bucket `<prefix>-event-status`: the same seen from every node. */
export class StatusStore {
  private constructor(
    readonly kv: KV,
    private readonly nc: NatsConnection,
    private readonly bucket: string,
  ) {}

  static async open(nc: NatsConnection, prefix: string, replicas: number): Promise<StatusStore> {
    const bucket = `${prefix}-event-status`;
    return new StatusStore(await new Kvm(nc).create(bucket, { replicas, history: 1, ttl: RETENTION_MS }), nc, bucket);
  }

  async get(id: string): Promise<StoredStatus | undefined> {
    const entry = await withRetry(`reading the status of ${id}`, () => this.kv.get(statusKey(id)));
    return entry && entry.operation === 'PUT' && entry.length > 0 ? entry.json<StoredStatus>() : undefined;
  }

  async put(status: StoredStatus): Promise<void> {
    const value = encodeStatus(status);
    await withRetry(`storing the status of ${status.id}`, () => this.kv.put(statusKey(status.id), value));
  }

  /**
   * Sends the status without waiting for the server's ack (a KV put is a publish on `$KV.<bucket>.<key>`).
   * For writes nothing depends on: a later put on this connection lands after it.
   */
  putWithoutAck(status: StoredStatus): void {
    try {
      this.nc.publish(`$KV.${this.bucket}.${statusKey(status.id)}`, encodeStatus(status));
    } catch {
      // connection closed: the next awaited put reports it
    }
  }

  /** Stores only when no status exists yet; false when one does (a repeated client id). */
  async create(status: StoredStatus): Promise<boolean> {
    try {
      await this.kv.create(statusKey(status.id), JSON.stringify(status));
      return true;
    } catch {
      return (await this.get(status.id)) === undefined ? Promise.reject(new Error(`cannot store the status of ${status.id}`)) : false;
    }
  }
}

/** A status as stored, stamped with the time of the write. */
function encodeStatus(status: StoredStatus): string {
  return JSON.stringify({ ...status, updatedAt: Date.now() });
}

/** Event ids are any client string: base64url keeps KV keys and subject tokens valid. */
export function statusKey(id: string): string {
  return /^[A-Za-z0-9_-]+$/.test(id) ? id : `b64_${Buffer.from(id).toString('base64url')}`;
}

export function toEventStatus(stored: StoredStatus): EventStatus {
  const status: EventStatus = {
    id: stored.id,
    app: stored.app,
    event: stored.event,
    state: stored.state,
    attempts: stored.attempts,
    maxAttempts: stored.maxAttempts,
    resultTruncated: stored.resultTruncated,
    createdAt: stored.createdAt,
    updatedAt: stored.updatedAt,
  };
  if (stored.lastError !== undefined) status.lastError = stored.lastError;
  if (stored.result !== undefined) status.result = Buffer.from(stored.result, 'base64');
  if (stored.traceId !== undefined) status.traceId = stored.traceId;
  return status;
}

/** `{traceId}` from an event's stored headers (the `Cocaine-Headers` JSON), or `{}`. */
export function traceIdField(encodedHeaders: string | undefined): { traceId?: string } {
  if (!encodedHeaders || !encodedHeaders.includes('traceparent')) return {};
  try {
    const traceId = traceIdOfHeaders(JSON.parse(encodedHeaders) as Record<string, string>);
    return traceId === undefined ? {} : { traceId };
  } catch {
    return {};
  }
}
