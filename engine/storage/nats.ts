import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { jetstream, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Profile } from '../../manifests/types.js';
import { EngineError, InvalidInputError, NotFoundError } from '../errors/index.js';
import { connectNats, parseNatsServers } from '../nats/connection.js';
import { AsyncChannel } from '../util/async-channel.js';
import { validateName } from '../util/names.js';
import { retryNats } from '../nats/retry.js';
import { checkArchiveFile } from './archive-file.js';
import { readObject } from './nats-archive.js';
import { crashlogFilter, crashlogKey, keyToName, nameToKey, parseCrashlogKeys, type CrashlogKey } from './nats-keys.js';
import type { AppRecord, CrashlogEntry, CrashlogSummary, Runlist, Storage, StorageChange } from './types.js';

export interface NatsStorageOptions {
  /** One url, a comma-separated list, or an array: any members of one NATS cluster. */
  servers: string | string[];
  /** Namespaces the buckets: `<prefix>-apps` (object store), `<prefix>-app-records`... (KV). */
  prefix?: string;
  /** JetStream replicas of every bucket (1, or 3 on a 3-server cluster). */
  replicas?: number;
  /** Crashlogs kept per app when addCrashlog is not told otherwise. */
  crashlogKeep?: number;
}

export interface ResolvedNatsStorageOptions {
  servers: string[];
  prefix: string;
  replicas: number;
  crashlogKeep: number;
}

export const NATS_STORAGE_DEFAULTS = Object.freeze({ prefix: 'cocaine', replicas: 1, crashlogKeep: 50 });

/** How often a KV watch is checked against its bucket's head revision (see follow()). */
const WATCH_CHECK_MS = 2_000;

/** The bucket's latest revision (its stream's last sequence). */
async function headRevision(kv: KV): Promise<number> {
  return (await kv.status()).streamInfo.state.last_seq;
}

/** Bounds the changes buffered for one slow watcher; past it the watcher fails instead of growing forever. */
const WATCH_BUFFER = 4_096;
const REQUEST_TIMEOUT_MS = 2_000;

export function resolveNatsStorageOptions(options: NatsStorageOptions): ResolvedNatsStorageOptions {
  const servers = parseNatsServers(options.servers ?? '');
  const prefix = options.prefix ?? NATS_STORAGE_DEFAULTS.prefix;
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) {
    throw new InvalidInputError('invalid_argument', `storage prefix ${JSON.stringify(prefix)} is invalid: expected 1 to 32 letters, digits, '_' or '-'`, { field: 'prefix' });
  }
  const replicas = options.replicas ?? NATS_STORAGE_DEFAULTS.replicas;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
    throw new InvalidInputError('invalid_argument', `storage replicas ${JSON.stringify(replicas)} is invalid: expected an integer from 1 to 5`, { field: 'replicas' });
  }
  const crashlogKeep = options.crashlogKeep ?? NATS_STORAGE_DEFAULTS.crashlogKeep;
  if (!Number.isInteger(crashlogKeep) || crashlogKeep < 1) {
    throw new InvalidInputError('invalid_argument', `crashlogKeep ${JSON.stringify(crashlogKeep)} is invalid: expected a positive integer`, { field: 'crashlogKeep' });
  }
  return { servers, prefix, replicas, crashlogKeep };
}

const present = (entry: KvEntry | null): entry is KvEntry => entry !== null && entry.operation === 'PUT' && entry.length > 0;

/**
 * Storage on NATS JetStream: archives in an object store, records, profiles, the runlist (one key
 * per app, so concurrent additions never race) and crashlogs in KV buckets. KV watches announce
 * every node's changes to every node. Reads go to each stream's leader (no direct gets), so a node
 * never reads older data than a change it was told about.
 */
export class NatsStorage implements Storage {
  readonly kind = 'nats';
  readonly location: string;
  private readonly watchers = new Set<AsyncChannel<StorageChange>>();
  private readonly stopWatching: Array<() => void> = [];
  private closed = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly options: ResolvedNatsStorageOptions,
    private readonly archives: ObjectStore,
    private readonly records: KV,
    private readonly profiles: KV,
    private readonly runlist: KV,
    private readonly crashlogs: KV,
  ) {
    this.location = options.servers.join(',');
  }

  static async open(options: NatsStorageOptions): Promise<NatsStorage> {
    const resolved = resolveNatsStorageOptions(options);
    const { prefix, replicas } = resolved;
    const nc = await connectNats(resolved.servers, { name: `cocaine-engine storage ${prefix}` });
    try {
      // Short requests: a request lost with a dead stream leader is retried (guard) instead of waited on.
      const js = jetstream(nc, { timeout: REQUEST_TIMEOUT_MS });
      const kvm = new Kvm(js);
      const bucket = (name: string) => retryNats(() => kvm.create(`${prefix}-${name}`, { replicas, history: 1, allow_direct: false }));
      const [archives, records, profiles, runlist, crashlogs] = await Promise.all([
        retryNats(() => new Objm(js).create(`${prefix}-apps`, { replicas })),
        bucket('app-records'),
        bucket('profiles'),
        bucket('runlist'),
        bucket('crashlogs'),
      ]);
      const jsm = await retryNats(() => js.jetstreamManager());
      const storage = new NatsStorage(nc, jsm, resolved, archives, records, profiles, runlist, crashlogs);
      await Promise.all([
        storage.follow(records, (name, removed) => ({ kind: 'app', name, removed })),
        storage.follow(profiles, (name, removed) => ({ kind: 'profile', name, removed })),
        storage.follow(runlist, () => ({ kind: 'runlist' })),
      ]);
      return storage;
    } catch (error) {
      await nc.close().catch(() => undefined);
      throw wrap(`opening buckets "${prefix}-*" at ${resolved.servers.join(',')}`, error);
    }
  }

  /**
   * Announces changes of one bucket to every watcher, from revision `after` + 1 (at first: the
   * bucket's revision now, so only updates). The watch is restarted from the last revision seen
   * when the server ends it, after a reconnect, and when it goes silent: in a cluster its consumer
   * may sit on a server that died while this client stays connected to another, and nothing says
   * so. Every WATCH_CHECK_MS the bucket's head revision is compared with the last one seen; behind
   * at two checks in a row with nothing received in between means the watch is dead.
   */
  private async follow(kv: KV, change: (name: string, removed: boolean) => StorageChange, after?: number): Promise<void> {
    // Both are requests to the stream: retried like the others (a server just restarted may not
    // answer the first ones in time).
    let last = after ?? (await retryNats(() => headRevision(kv)));
    const iterator = await retryNats(() => kv.watch({ resumeFromRevision: last + 1 }));
    let stopped = false;
    let stalledAt: number | undefined;
    const check = setInterval(() => {
      void headRevision(kv).then(
        (head) => {
          if (stopped || head <= last) {
            stalledAt = undefined;
            return;
          }
          if (stalledAt === last) iterator.stop();
          else stalledAt = last;
        },
        () => undefined,
      );
    }, WATCH_CHECK_MS);
    check.unref();
    const stop = () => {
      stopped = true;
      clearInterval(check);
      iterator.stop();
    };
    this.stopWatching.push(stop);
    void (async () => {
      for await (const status of this.nc.status()) {
        if (stopped) return;
        if (status.type === 'reconnect') return iterator.stop();
      }
    })().catch(() => undefined);
    void (async () => {
      for await (const entry of iterator) {
        last = entry.revision;
        const event = change(keyToName(entry.key), entry.operation !== 'PUT');
        for (const watcher of this.watchers) {
          if (!watcher.push(event) && watcher.size > WATCH_BUFFER) {
            this.watchers.delete(watcher);
            watcher.fail(new EngineError('storage_error', `storage watcher fell more than ${WATCH_BUFFER} changes behind`));
          }
        }
      }
    })()
      .catch(() => undefined)
      .then(() => {
        clearInterval(check);
        if (!stopped) void this.refollow(kv, change, last);
      });
  }

  /** Watches again from `after`, retrying while NATS cannot serve the watch yet (a failover). */
  private async refollow(kv: KV, change: (name: string, removed: boolean) => StorageChange, after: number): Promise<void> {
    for (let delay = 100; !this.closed && !this.nc.isClosed(); delay = Math.min(2_000, delay * 2)) {
      try {
        return await this.follow(kv, change, after);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  async putApp(record: AppRecord, archivePath: string): Promise<void> {
    validateName('app', record.name);
    await checkArchiveFile(record, archivePath);
    await guard(`storing app "${record.name}"`, async () => {
      // The archive first: a node told about the record can always read its archive. Streamed from
      // the file (a fresh stream on every retry), one object-store chunk in memory at a time.
      const data = Readable.toWeb(createReadStream(archivePath)) as unknown as ReadableStream<Uint8Array>;
      await this.archives.put({ name: record.name }, data);
      await this.records.put(nameToKey(record.name), JSON.stringify(record));
    });
  }

  async getApp(name: string): Promise<AppRecord | undefined> {
    validateName('app', name);
    const entry = await guard(`reading app "${name}"`, () => this.records.get(nameToKey(name)));
    return present(entry) ? entry.json<AppRecord>() : undefined;
  }

  /** Streamed chunk by chunk as the reader asks (see readObject), checked against the object's digest. */
  async openArchive(name: string): Promise<Readable> {
    validateName('app', name);
    const info = await guard(`reading the archive of app "${name}"`, () => this.archives.info(name));
    if (!info || info.deleted) throw new NotFoundError('app_not_found', `no app named "${name}" in NATS storage (bucket ${this.options.prefix}-apps)`);
    return readObject(this.jsm, `${this.options.prefix}-apps`, info, (operation) => guard(`reading the archive of app "${name}"`, operation));
  }

  async listApps(): Promise<AppRecord[]> {
    const keys = await this.keys(this.records);
    const records = await Promise.all(keys.map((key) => this.getApp(keyToName(key))));
    return records.filter((record): record is AppRecord => record !== undefined).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async removeApp(name: string): Promise<boolean> {
    const existed = (await this.getApp(name)) !== undefined;
    await this.removeCrashlogs(name);
    await guard(`removing app "${name}"`, async () => {
      await this.archives.delete(name).catch((error: unknown) => {
        if (!/not found/i.test((error as Error)?.message ?? '')) throw error;
      });
      if (existed) await this.records.delete(nameToKey(name));
    });
    return existed;
  }

  async putProfile(name: string, profile: Profile): Promise<void> {
    validateName('profile', name);
    await guard(`storing profile "${name}"`, () => this.profiles.put(nameToKey(name), JSON.stringify(profile)));
  }

  async getProfile(name: string): Promise<Profile | undefined> {
    validateName('profile', name);
    const entry = await guard(`reading profile "${name}"`, () => this.profiles.get(nameToKey(name)));
    return present(entry) ? entry.json<Profile>() : undefined;
  }

  async listProfiles(): Promise<string[]> {
    const keys = await this.keys(this.profiles);
    const entries = await guard('reading profiles', () => Promise.all(keys.map((key) => this.profiles.get(key))));
    return keys.filter((_key, i) => present(entries[i] ?? null)).map(keyToName).sort();
  }

  async removeProfile(name: string): Promise<boolean> {
    const existed = (await this.getProfile(name)) !== undefined;
    if (existed) await guard(`removing profile "${name}"`, () => this.profiles.delete(nameToKey(name)));
    return existed;
  }

  async getRunlist(): Promise<Runlist> {
    const keys = await this.keys(this.runlist);
    const entries = await guard('reading the runlist', () => Promise.all(keys.map((key) => this.runlist.get(key))));
    const runlist: Runlist = {};
    keys.forEach((key, i) => {
      const entry = entries[i] ?? null;
      if (present(entry)) runlist[keyToName(key)] = entry.string();
    });
    return runlist;
  }

  async addToRunlist(app: string, profile: string): Promise<Runlist> {
    validateName('app', app);
    validateName('profile', profile);
    await guard(`adding "${app}" to the runlist`, () => this.runlist.put(nameToKey(app), profile));
    return this.getRunlist();
  }

  async removeFromRunlist(app: string): Promise<Runlist> {
    validateName('app', app);
    const entry = await guard(`reading the runlist entry of "${app}"`, () => this.runlist.get(nameToKey(app)));
    if (present(entry)) await guard(`removing "${app}" from the runlist`, () => this.runlist.delete(nameToKey(app)));
    return this.getRunlist();
  }

  private async crashlogKeys(app: string): Promise<CrashlogKey[]> {
    validateName('app', app);
    return parseCrashlogKeys(app, await this.keys(this.crashlogs, crashlogFilter(app)));
  }

  async addCrashlog(entry: CrashlogEntry, keep = this.options.crashlogKeep): Promise<void> {
    validateName('app', entry.app);
    await guard(`storing crashlog "${entry.id}" of app "${entry.app}"`, () => this.crashlogs.put(crashlogKey(entry.app, entry.timestamp, entry.id), JSON.stringify(entry)));
    const old = (await this.crashlogKeys(entry.app)).slice(Math.max(1, keep));
    await guard(`dropping old crashlogs of app "${entry.app}"`, () => this.dropCrashlogs(old));
  }

  async listCrashlogs(app: string): Promise<CrashlogSummary[]> {
    const keys = await this.crashlogKeys(app);
    const entries = await guard(`reading crashlogs of app "${app}"`, () => Promise.all(keys.map(({ key }) => this.crashlogs.get(key))));
    return entries.filter(present).map((entry) => {
      const { lines: _lines, ...summary } = entry.json<CrashlogEntry>();
      return summary;
    });
  }

  async getCrashlog(app: string, id: string): Promise<CrashlogEntry | undefined> {
    const found = (await this.crashlogKeys(app)).find((candidate) => candidate.id === id);
    if (!found) return undefined;
    const entry = await guard(`reading crashlog "${id}" of app "${app}"`, () => this.crashlogs.get(found.key));
    return present(entry) ? entry.json<CrashlogEntry>() : undefined;
  }

  async removeCrashlogs(app: string): Promise<number> {
    const keys = await this.crashlogKeys(app);
    await guard(`removing crashlogs of app "${app}"`, () => this.dropCrashlogs(keys));
    return keys.length;
  }

  watch(): AsyncIterable<StorageChange> {
    const channel = new AsyncChannel<StorageChange>(64, () => this.watchers.delete(channel));
    if (this.closed) channel.close();
    else this.watchers.add(channel);
    return channel;
  }

  /** The stream behind a KV bucket and the subject prefix of its keys (`KV_<bucket>`, `$KV.<bucket>.`). */
  private bucketStream(kv: KV): { stream: string; prefix: string } {
    const suffix = new Map<KV, string>([
      [this.records, 'app-records'],
      [this.profiles, 'profiles'],
      [this.runlist, 'runlist'],
      [this.crashlogs, 'crashlogs'],
    ]).get(kv);
    const bucket = `${this.options.prefix}-${suffix}`;
    return { stream: `KV_${bucket}`, prefix: `$KV.${bucket}.` };
  }

  /** Crashlogs are never watched: their subjects are purged outright, leaving no delete marker to list. */
  private async dropCrashlogs(keys: CrashlogKey[]): Promise<void> {
    const { stream, prefix } = this.bucketStream(this.crashlogs);
    await Promise.all(keys.map(({ key }) => this.jsm.streams.purge(stream, { filter: `${prefix}${key}` })));
  }

  /**
   * Keys with a message (a value or a delete marker), from the stream leader's subject list: a KV
   * key listing runs on a consumer that may sit on a replica still catching up after a restart.
   */
  private async keys(kv: KV, filter = '>'): Promise<string[]> {
    const { stream, prefix } = this.bucketStream(kv);
    return guard(`listing keys of ${stream}`, async () => {
      const info = await this.jsm.streams.info(stream, { subjects_filter: `${prefix}${filter}` });
      return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const stop of this.stopWatching) stop();
    for (const watcher of this.watchers) watcher.close();
    this.watchers.clear();
    await this.nc.drain().catch(() => undefined);
  }
}

function wrap(what: string, error: unknown): EngineError {
  if (error instanceof EngineError) return error;
  const message = (error as Error)?.message ?? String(error);
  return new EngineError('storage_error', `NATS storage: ${what} failed: ${message}`, { cause: error });
}

/** Every request the storage makes is idempotent, so each is retried through a failover. */
async function guard<T>(what: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await retryNats(operation);
  } catch (error) {
    throw wrap(what, error);
  }
}
