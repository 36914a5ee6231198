import { Kvm, KvWatchInclude, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Profile } from '../../manifests/types.js';
import { NotFoundError } from '../errors/index.js';
import { connectNats } from '../nats/connection.js';
import { AsyncChannel } from '../util/async-channel.js';
import { validateName } from '../util/names.js';
import type { AppRecord, CrashlogEntry, CrashlogSummary, Runlist, Storage, StorageChange } from './types.js';

export interface NatsStorageOptions {
  servers: string | string[];
  /** Namespaces buckets: `<prefix>-apps`, `<prefix>-app-records`... */
  prefix?: string;
  replicas?: number;
}

const DEFAULT_CRASHLOG_KEEP = 50;

/** KV keys use `.` as a token separator; names may contain dots, which `=` (never in names) stands for. */
const token = (name: string) => name.replaceAll('.', '=');
const untoken = (key: string) => key.replaceAll('=', '.');

/**
 * Storage on NATS JetStream: archives in an object store, records, profiles, the runlist (one key
 * per app, so concurrent additions never race) and crashlogs in KV buckets. KV watches announce
 * every node's changes to every node.
 */
export class NatsStorage implements Storage {
  readonly kind = 'nats';
  readonly location: string;
  private readonly watchers = new Set<AsyncChannel<StorageChange>>();
  private readonly stopWatching: Array<() => void> = [];
  private closed = false;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly archives: ObjectStore,
    private readonly records: KV,
    private readonly profiles: KV,
    private readonly runlist: KV,
    private readonly crashlogs: KV,
    location: string,
  ) {
    this.location = location;
  }

  static async open(options: NatsStorageOptions): Promise<NatsStorage> {
    const prefix = options.prefix ?? 'cocaine';
    const replicas = options.replicas ?? 1;
    const nc = await connectNats(options.servers, { name: 'cocaine-engine storage' });
    try {
      const kvm = new Kvm(nc);
      const bucket = (name: string) => kvm.create(`${prefix}-${name}`, { replicas, history: 1 });
      const archives = await new Objm(nc).create(`${prefix}-apps`, { replicas });
      const storage = new NatsStorage(
        nc,
        archives,
        await bucket('app-records'),
        await bucket('profiles'),
        await bucket('runlist'),
        await bucket('crashlogs'),
        Array.isArray(options.servers) ? options.servers.join(',') : options.servers,
      );
      await storage.startWatches();
      return storage;
    } catch (error) {
      await nc.close();
      throw error;
    }
  }

  private async startWatches(): Promise<void> {
    const follow = async (kv: KV, change: (key: string, removed: boolean) => StorageChange) => {
      const iterator = await kv.watch({ include: KvWatchInclude.UpdatesOnly });
      this.stopWatching.push(() => iterator.stop());
      void (async () => {
        for await (const entry of iterator) {
          const event = change(untoken(entry.key), entry.operation !== 'PUT');
          for (const watcher of this.watchers) watcher.push(event);
        }
      })().catch(() => undefined);
    };
    await follow(this.records, (name, removed) => ({ kind: 'app', name, removed }));
    await follow(this.profiles, (name, removed) => ({ kind: 'profile', name, removed }));
    await follow(this.runlist, () => ({ kind: 'runlist' }));
  }

  async putApp(record: AppRecord, archive: Buffer): Promise<void> {
    validateName('app', record.name);
    await this.archives.putBlob({ name: record.name }, new Uint8Array(archive.buffer, archive.byteOffset, archive.length));
    await this.records.put(token(record.name), JSON.stringify(record));
  }

  async getApp(name: string): Promise<AppRecord | undefined> {
    validateName('app', name);
    const entry = await this.records.get(token(name));
    return entry && entry.operation === 'PUT' && entry.length > 0 ? entry.json<AppRecord>() : undefined;
  }

  async readArchive(name: string): Promise<Buffer> {
    validateName('app', name);
    const blob = await this.archives.getBlob(name);
    if (!blob) throw new NotFoundError('app_not_found', `no app named "${name}" in NATS storage`);
    return Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  }

  async listApps(): Promise<AppRecord[]> {
    const records: AppRecord[] = [];
    for (const key of await this.keys(this.records)) {
      const record = await this.getApp(untoken(key));
      if (record) records.push(record);
    }
    return records.sort((a, b) => a.name.localeCompare(b.name));
  }

  async removeApp(name: string): Promise<boolean> {
    const existed = (await this.getApp(name)) !== undefined;
    await this.removeCrashlogs(name);
    await this.archives.delete(name).catch(() => undefined);
    if (existed) await this.records.delete(token(name));
    return existed;
  }

  async putProfile(name: string, profile: Profile): Promise<void> {
    validateName('profile', name);
    await this.profiles.put(token(name), JSON.stringify(profile));
  }

  async getProfile(name: string): Promise<Profile | undefined> {
    validateName('profile', name);
    const entry = await this.profiles.get(token(name));
    return entry && entry.operation === 'PUT' && entry.length > 0 ? entry.json<Profile>() : undefined;
  }

  async listProfiles(): Promise<string[]> {
    return (await this.keys(this.profiles)).map(untoken).sort();
  }

  async removeProfile(name: string): Promise<boolean> {
    const existed = (await this.getProfile(name)) !== undefined;
    if (existed) await this.profiles.delete(token(name));
    return existed;
  }

  async getRunlist(): Promise<Runlist> {
    const runlist: Runlist = {};
    for (const key of await this.keys(this.runlist)) {
      const entry = await this.runlist.get(key);
      if (entry && entry.operation === 'PUT' && entry.length > 0) runlist[untoken(key)] = entry.string();
    }
    return runlist;
  }

  async addToRunlist(app: string, profile: string): Promise<Runlist> {
    validateName('app', app);
    validateName('profile', profile);
    await this.runlist.put(token(app), profile);
    return this.getRunlist();
  }

  async removeFromRunlist(app: string): Promise<Runlist> {
    validateName('app', app);
    const entry = await this.runlist.get(token(app));
    if (entry && entry.operation === 'PUT') await this.runlist.delete(token(app));
    return this.getRunlist();
  }

  /** Keys are `<app>.<timestamp>_<id>`, so listing one app's crashlogs newest first needs no reads. */
  private async crashlogKeys(app: string): Promise<Array<{ key: string; id: string; timestamp: number }>> {
    validateName('app', app);
    const keys = await this.keys(this.crashlogs, `${token(app)}.>`);
    return keys
      .map((key) => {
        const rest = key.slice(token(app).length + 1);
        const split = rest.indexOf('_');
        return { key, timestamp: Number(rest.slice(0, split)), id: untoken(rest.slice(split + 1)) };
      })
      .sort((a, b) => b.timestamp - a.timestamp || b.id.localeCompare(a.id));
  }

  async addCrashlog(entry: CrashlogEntry, keep = DEFAULT_CRASHLOG_KEEP): Promise<void> {
    validateName('app', entry.app);
    const key = `${token(entry.app)}.${String(entry.timestamp).padStart(15, '0')}_${token(entry.id)}`;
    await this.crashlogs.put(key, JSON.stringify(entry));
    const all = await this.crashlogKeys(entry.app);
    for (const old of all.slice(Math.max(1, keep))) await this.crashlogs.delete(old.key);
  }

  async listCrashlogs(app: string): Promise<CrashlogSummary[]> {
    const summaries: CrashlogSummary[] = [];
    for (const { key } of await this.crashlogKeys(app)) {
      const entry = await this.crashlogs.get(key);
      if (!entry || entry.operation !== 'PUT' || entry.length === 0) continue;
      const { lines: _lines, ...summary } = entry.json<CrashlogEntry>();
      summaries.push(summary);
    }
    return summaries;
  }

  async getCrashlog(app: string, id: string): Promise<CrashlogEntry | undefined> {
    const found = (await this.crashlogKeys(app)).find((candidate) => candidate.id === id);
    if (!found) return undefined;
    const entry = await this.crashlogs.get(found.key);
    return entry && entry.operation === 'PUT' && entry.length > 0 ? entry.json<CrashlogEntry>() : undefined;
  }

  async removeCrashlogs(app: string): Promise<number> {
    const keys = await this.crashlogKeys(app);
    for (const { key } of keys) await this.crashlogs.delete(key);
    return keys.length;
  }

  watch(): AsyncIterable<StorageChange> {
    const channel = new AsyncChannel<StorageChange>(1_024, () => this.watchers.delete(channel));
    if (this.closed) channel.close();
    else this.watchers.add(channel);
    return channel;
  }

  private async keys(kv: KV, filter?: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const key of await kv.keys(filter)) keys.push(key);
    return keys;
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
