import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { EngineError, InvalidInputError } from '../errors/index.js';
import { AppStoreQuotaError, closedError, RevisionMismatchError } from './errors.js';
import { KeyedLock } from './keyed-lock.js';
import { resolveAppStoreOptions } from './options.js';
import type { AppStore, AppStoreEntry, AppStoreListOptions, AppStoreOptions, AppStorePage, AppStoreWriteOptions, ResolvedAppStoreOptions } from './types.js';
import { checkExpected, pageOf, validateAppKey, validateExpectedRevision, validateList, validateValue } from './validate.js';

export interface LmdbAppStoreOptions extends AppStoreOptions {
  /** The store's own directory (the engine passes `<data dir>/app-store`). */
  dir: string;
}

/**
 * Entry keys are `<app> NUL <key>` in bytes. App names (engine/util/names.ts) and keys (printable
 * ASCII) never hold a NUL, so the first NUL ends the app part: no key of one app can be spelled as
 * a key of another, and `<app> NUL` ... `<app> 0x01` bounds exactly one app's range.
 */
const entryKey = (app: string, key: string): Buffer => Buffer.from(`${app}\0${key}`, 'latin1');
const appStart = (app: string): Buffer => Buffer.from(`${app}\0`, 'latin1');
const appEnd = (app: string): Buffer => Buffer.from(`${app}\x01`, 'latin1');

/** Meta key of the last revision issued, written in the same transaction as every entry write. */
const LAST_REVISION = 'last-revision';

/**
 * The app store in LMDB: one environment in its own directory, an `entries` database whose entry
 * versions are the revisions, and a `meta` database holding the last revision issued (so revisions
 * keep growing across restarts, and a deleted key never gets an old revision back). Commits are
 * fsynced before a write's promise resolves. Writes of one key run one at a time (each sees the
 * revision the previous one left); writes of different keys and apps commit together.
 * One engine process per directory: the revision counter and key counts live in this process.
 */
export class LmdbAppStore implements AppStore {
  readonly kind = 'lmdb';
  readonly location: string;
  private readonly locks = new KeyedLock();
  /**
   * Key count per app, counted once from its range, then kept here: a new key adds one before its
   * write (undone if the write fails), a delete takes one off after.
   */
  private readonly counts = new Map<string, number>();
  private lastRevision: number;
  private closed = false;

  private constructor(
    readonly options: ResolvedAppStoreOptions,
    dir: string,
    private readonly root: RootDatabase,
    private readonly entries: Database<Buffer, Buffer>,
    private readonly meta: Database<number, string>,
  ) {
    this.location = dir;
    this.lastRevision = meta.get(LAST_REVISION) ?? 0;
  }

  static async open(options: LmdbAppStoreOptions): Promise<LmdbAppStore> {
    const { dir, ...limits } = options;
    if (typeof dir !== 'string' || dir.length === 0) {
      throw new InvalidInputError('invalid_argument', 'app-store option dir must be a non-empty path', { field: 'app-store.dir' });
    }
    const resolved = resolveAppStoreOptions(limits);
    try {
      mkdirSync(dir, { recursive: true });
      const root = open({ path: dir, overlappingSync: false, noSync: false, maxDbs: 4 });
      const entries = root.openDB<Buffer, Buffer>({ name: 'entries', useVersions: true, keyEncoding: 'binary', encoding: 'binary' });
      const meta = root.openDB<number, string>({ name: 'meta' });
      return new LmdbAppStore(resolved, dir, root, entries, meta);
    } catch (error) {
      throw new EngineError('storage_error', `cannot open the app store in ${dir}: ${(error as Error).message}`, { cause: error });
    }
  }

  async get(app: string, key: string): Promise<AppStoreEntry | undefined> {
    this.checkOpen();
    validateAppKey(app, key);
    const entry = this.read(entryKey(app, key));
    return entry && { value: Buffer.from(entry.value), revision: entry.version };
  }

  async put(app: string, key: string, value: Buffer | Uint8Array, options?: AppStoreWriteOptions): Promise<number> {
    this.checkOpen();
    validateAppKey(app, key);
    const data = validateValue(key, value, this.options);
    const expected = validateExpectedRevision(options?.expectedRevision, 0);
    const id = entryKey(app, key);
    return this.locks.run(id.toString('latin1'), async () => {
      for (;;) {
        const current = this.read(id);
        checkExpected(app, key, expected, current?.version ?? 0);
        // A new key takes its slot now, synchronously, so writes of other keys cannot take it too.
        if (!current) this.reserveKey(app);
        // Above every revision issued here and above the key's own (should another process have written it).
        const revision = Math.max(this.lastRevision, current?.version ?? 0) + 1;
        this.lastRevision = revision;
        const written = current ? this.entries.put(id, data, revision, current.version) : this.entries.ifNoExists(id, () => this.entries.put(id, data, revision));
        const recorded = this.meta.put(LAST_REVISION, revision);
        let ok = false;
        try {
          [ok] = await this.commit(`storing key ${JSON.stringify(key)} of app "${app}"`, Promise.all([written, recorded]));
        } finally {
          if (!current && !ok) this.adjustCount(app, -1);
        }
        if (ok) return revision;
        // Changed under us, not through this process: recount, and let a compare-and-set fail.
        this.counts.delete(app);
        if (expected !== undefined) throw new RevisionMismatchError(app, key, expected, this.read(id)?.version ?? 0);
      }
    });
  }

  async delete(app: string, key: string, options?: AppStoreWriteOptions): Promise<boolean> {
    this.checkOpen();
    validateAppKey(app, key);
    const expected = validateExpectedRevision(options?.expectedRevision, 1);
    const id = entryKey(app, key);
    return this.locks.run(id.toString('latin1'), async () => {
      for (;;) {
        const current = this.read(id);
        checkExpected(app, key, expected, current?.version ?? 0);
        if (!current) return false;
        const ok = await this.commit(`deleting key ${JSON.stringify(key)} of app "${app}"`, this.entries.remove(id, current.version));
        if (ok) {
          this.adjustCount(app, -1);
          return true;
        }
        this.counts.delete(app);
        if (expected !== undefined) throw new RevisionMismatchError(app, key, expected, this.read(id)?.version ?? 0);
      }
    });
  }

  async list(app: string, prefix?: string, options?: AppStoreListOptions): Promise<AppStorePage> {
    this.checkOpen();
    const query = validateList(app, prefix, options, this.options);
    const fromPrefix = entryKey(app, query.prefix);
    // The smallest key after `after` is `after` NUL (no key holds a NUL).
    const fromAfter = query.after === undefined ? undefined : Buffer.concat([entryKey(app, query.after), Buffer.from([0])]);
    const start = fromAfter && Buffer.compare(fromAfter, fromPrefix) > 0 ? fromAfter : fromPrefix;
    const skip = appStart(app).length;
    const keys = this.entries.getKeys({ start, end: appEnd(app), limit: query.limit + 1 }).map((id) => (id as Buffer).toString('latin1', skip));
    // Keys come in byte order: the range ends at the first key without the prefix.
    const within = Array.from(keys).filter((key) => key.startsWith(query.prefix));
    return pageOf(within, query);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.locks.idle();
    await this.root.committed;
    await this.root.close();
  }

  private read(id: Buffer): { value: Buffer; version: number } | undefined {
    const entry = this.entries.getEntry(id);
    return entry === undefined ? undefined : { value: entry.value, version: entry.version ?? 0 };
  }

  private reserveKey(app: string): void {
    const count = this.countKeys(app);
    if (count >= this.options.maxKeysPerApp) throw new AppStoreQuotaError(app, this.options.maxKeysPerApp);
    this.counts.set(app, count + 1);
  }

  private countKeys(app: string): number {
    let count = this.counts.get(app);
    if (count === undefined) {
      count = this.entries.getKeysCount({ start: appStart(app), end: appEnd(app) });
      this.counts.set(app, count);
    }
    return count;
  }

  private adjustCount(app: string, delta: number): void {
    const count = this.counts.get(app);
    if (count !== undefined) this.counts.set(app, count + delta);
  }

  private async commit<T>(what: string, write: Promise<T>): Promise<T> {
    try {
      return await write;
    } catch (error) {
      throw new EngineError('storage_error', `app store: ${what} failed: ${(error as Error).message}`, { cause: error });
    }
  }

  private checkOpen(): void {
    if (this.closed) throw closedError(this.kind);
  }
}
