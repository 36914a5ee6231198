import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { jetstream, JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { EngineError, InvalidInputError } from '../errors/index.js';
import { connectNats, parseNatsServers } from '../nats/connection.js';
import { retryNats } from '../nats/retry.js';
import { AppStoreQuotaError, closedError, RevisionMismatchError } from './errors.js';
import { appFilter, entryKey, keyOf } from './nats-keys.js';
import { resolveAppStoreOptions } from './options.js';
import type { AppStore, AppStoreEntry, AppStoreListOptions, AppStoreOptions, AppStorePage, AppStoreWriteOptions, ResolvedAppStoreOptions } from './types.js';
import { checkExpected, pageOf, validateAppKey, validateExpectedRevision, validateList, validateValue } from './validate.js';

export interface NatsAppStoreOptions extends AppStoreOptions {
  /** One url, a comma-separated list, or an array: any members of one NATS cluster. */
  servers: string | string[];
  /** The bucket is `<prefix>-app-store` (the prefix of the engine's other buckets). */
  prefix?: string;
  /** JetStream replicas of the bucket. */
  replicas?: number;
}

const REQUEST_TIMEOUT_MS = 2_000;
/** Room left in a NATS message for the headers beside a value of maxValueBytes. */
const HEADER_ROOM = 4_096;

const present = (entry: KvEntry | null): entry is KvEntry => entry !== null && entry.operation === 'PUT';

const isWrongRevision = (error: unknown): boolean =>
  error instanceof JetStreamApiError &&
  (error.code === JetStreamApiCodes.StreamWrongLastSequence || error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);

/**
 * The app store in one NATS KV bucket (`<prefix>-app-store`, history 1), shared by every node:
 * the KV revision (stream sequence) is the revision, compare-and-set is the server's expected
 * last-subject-sequence check. A delete writes the KV delete marker with that check, then removes
 * the marker message, so deleted keys leave nothing behind: the subjects of an app's filter are
 * exactly its keys, which is how a new key is counted against `maxKeysPerApp`. That count is read
 * before the write, so writers creating keys at the same moment may overshoot it by their number.
 */
export class NatsAppStore implements AppStore {
  readonly kind = 'nats';
  readonly location: string;
  private closed = false;
  private readonly stream: string;
  private readonly subjectPrefix: string;

  private constructor(
    readonly options: ResolvedAppStoreOptions,
    servers: string[],
    bucket: string,
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly kv: KV,
  ) {
    this.location = servers.join(',');
    this.stream = `KV_${bucket}`;
    this.subjectPrefix = `$KV.${bucket}.`;
  }

  static async open(options: NatsAppStoreOptions): Promise<NatsAppStore> {
    const { servers: given, prefix = 'cocaine', replicas = 1, ...limits } = options;
    const servers = parseNatsServers(given ?? '');
    if (typeof prefix !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) {
      throw new InvalidInputError('invalid_argument', `app-store prefix ${JSON.stringify(prefix)} is invalid: expected 1 to 32 letters, digits, '_' or '-'`, { field: 'app-store.prefix' });
    }
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
      throw new InvalidInputError('invalid_argument', `app-store replicas ${JSON.stringify(replicas)} is invalid: expected an integer from 1 to 5`, { field: 'app-store.replicas' });
    }
    const resolved = resolveAppStoreOptions(limits);
    const bucket = `${prefix}-app-store`;
    const nc = await connectNats(servers, { name: `cocaine-engine app-store ${prefix}` });
    try {
      const maxPayload = nc.info?.max_payload;
      if (maxPayload !== undefined && resolved.maxValueBytes + HEADER_ROOM > maxPayload) {
        throw new InvalidInputError(
          'invalid_argument',
          `app-store option maxValueBytes (${resolved.maxValueBytes}) does not fit the NATS server's max_payload (${maxPayload} bytes, ${HEADER_ROOM} kept for headers)`,
          { field: 'app-store.maxValueBytes' },
        );
      }
      const js = jetstream(nc, { timeout: REQUEST_TIMEOUT_MS });
      const kv = await retryNats(() => new Kvm(js).create(bucket, { replicas, history: 1, allow_direct: false }));
      return new NatsAppStore(resolved, servers, bucket, nc, await js.jetstreamManager(), kv);
    } catch (error) {
      await nc.close().catch(() => undefined);
      throw wrap(`opening bucket "${bucket}" at ${servers.join(',')}`, error);
    }
  }

  async get(app: string, key: string): Promise<AppStoreEntry | undefined> {
    this.checkOpen();
    validateAppKey(app, key);
    const entry = await this.entry(app, key);
    return entry && { value: Buffer.from(entry.value), revision: entry.revision };
  }

  async put(app: string, key: string, value: Buffer | Uint8Array, options?: AppStoreWriteOptions): Promise<number> {
    this.checkOpen();
    validateAppKey(app, key);
    const data = validateValue(key, value, this.options);
    const expected = validateExpectedRevision(options?.expectedRevision, 0);
    const id = entryKey(app, key);
    const what = `storing key ${JSON.stringify(key)} of app "${app}"`;
    for (;;) {
      // Without an expectation, the write is a compare-and-set against the revision read here,
      // repeated until it lands: so a new key is always counted, and never overwrites a racing create.
      const revision = expected ?? (await this.entry(app, key))?.revision ?? 0;
      try {
        if (revision === 0) {
          if (await this.full(app)) {
            // Full, but an existing key is an update (or, for a create, a mismatch), as in any store.
            const current = await this.entry(app, key);
            if (!current) throw new AppStoreQuotaError(app, this.options.maxKeysPerApp);
            if (expected !== undefined) throw new RevisionMismatchError(app, key, expected, current.revision);
            continue;
          }
          return await guard(what, () => this.kv.create(id, data));
        }
        return await guard(what, () => this.kv.update(id, data, revision));
      } catch (error) {
        if (!isWrongRevision(error)) throw error;
        if (expected !== undefined) throw new RevisionMismatchError(app, key, expected, (await this.entry(app, key))?.revision ?? 0);
      }
    }
  }

  async delete(app: string, key: string, options?: AppStoreWriteOptions): Promise<boolean> {
    this.checkOpen();
    validateAppKey(app, key);
    const expected = validateExpectedRevision(options?.expectedRevision, 1);
    const id = entryKey(app, key);
    const what = `deleting key ${JSON.stringify(key)} of app "${app}"`;
    for (;;) {
      const current = await this.entry(app, key);
      checkExpected(app, key, expected, current?.revision ?? 0);
      if (!current) return false;
      try {
        await guard(what, () => this.kv.delete(id, { previousSeq: current.revision }));
      } catch (error) {
        if (!isWrongRevision(error)) throw error;
        if (expected !== undefined) throw new RevisionMismatchError(app, key, expected, (await this.entry(app, key))?.revision ?? 0);
        continue;
      }
      await this.dropMarker(id, what);
      return true;
    }
  }

  async list(app: string, prefix?: string, options?: AppStoreListOptions): Promise<AppStorePage> {
    this.checkOpen();
    const query = validateList(app, prefix, options, this.options);
    const keys = await guard(`listing keys of app "${app}"`, async () => {
      const found: string[] = [];
      for await (const kvKey of await this.kv.keys(appFilter(app))) found.push(keyOf(kvKey));
      return found;
    });
    return pageOf(keys, query);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.nc.drain().catch(() => undefined);
  }

  private async entry(app: string, key: string): Promise<KvEntry | undefined> {
    const entry = await guard(`reading key ${JSON.stringify(key)} of app "${app}"`, () => this.kv.get(entryKey(app, key)));
    return present(entry) ? entry : undefined;
  }

  /** Removes the delete marker just written, unless the key was written again since. */
  private async dropMarker(id: string, what: string): Promise<void> {
    const marker = await guard(what, () => this.kv.get(id));
    if (marker === null || marker.operation === 'PUT') return;
    await guard(what, () => this.jsm.streams.deleteMessage(this.stream, marker.revision, false)).catch((error: unknown) => {
      // Already gone (another node dropped it): nothing left to do.
      if (!/no message found|not found/i.test((error as Error)?.message ?? '')) throw error;
    });
  }

  /** Whether the app already holds maxKeysPerApp keys. */
  private async full(app: string): Promise<boolean> {
    const filter = `${this.subjectPrefix}${appFilter(app)}`;
    const info = await guard(`counting keys of app "${app}"`, () => this.jsm.streams.info(this.stream, { subjects_filter: filter }));
    return Object.keys(info.state.subjects ?? {}).length >= this.options.maxKeysPerApp;
  }

  private checkOpen(): void {
    if (this.closed) throw closedError(this.kind);
  }
}

function wrap(what: string, error: unknown): EngineError {
  if (error instanceof EngineError) return error;
  const message = (error as Error)?.message ?? String(error);
  return new EngineError('storage_error', `NATS app store: ${what} failed: ${message}`, { cause: error });
}

/**
 * Retries a request through a failover. Compare-and-set writes are retried too: should a write
 * whose answer was lost have landed, its retry fails the revision check, which the caller sees as
 * a mismatch (a put without expectation then reads the key again and finds its own value).
 * A revision mismatch is passed through unwrapped for the caller to recognise.
 */
async function guard<T>(what: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await retryNats(operation);
  } catch (error) {
    if (isWrongRevision(error)) throw error;
    throw wrap(what, error);
  }
}
