import { randomBytes } from 'node:crypto';
import { copyFile, constants as fsConstants, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { Profile } from '../../manifests/types.js';
import { EngineError, InvalidInputError, NotFoundError } from '../errors/index.js';
import { AsyncChannel } from '../util/async-channel.js';
import { isMissing, readJsonFile, syncDirectory, writeJsonAtomic } from '../util/atomic-file.js';
import { validateName } from '../util/names.js';
import { checkArchiveFile } from './archive-file.js';
import type { AppRecord, CrashlogEntry, CrashlogSummary, Runlist, Storage, StorageChange } from './types.js';

export interface FsStorageOptions {
  /** Root of the layout: apps/, profiles/, runlist.json, crashlogs/. */
  dataDir: string;
  /** fsync files and directories on every write (default true). */
  durable?: boolean;
  /** Changes buffered for a watcher that does not read before it is failed (default 1024). */
  watchBuffer?: number;
}

export const DEFAULT_FS_STORAGE_OPTIONS = Object.freeze({ durable: true, watchBuffer: 1024 });

export function resolveFsStorageOptions(options: FsStorageOptions): Required<FsStorageOptions> {
  if (typeof options?.dataDir !== 'string' || options.dataDir.trim() === '') {
    throw new InvalidInputError('invalid_argument', `storage option "dataDir" must be a non-empty path (got ${JSON.stringify(options?.dataDir)})`, { field: 'dataDir' });
  }
  const watchBuffer = options.watchBuffer ?? DEFAULT_FS_STORAGE_OPTIONS.watchBuffer;
  if (!Number.isSafeInteger(watchBuffer) || watchBuffer < 1) {
    throw new InvalidInputError('invalid_argument', `storage option "watchBuffer" must be an integer >= 1 (got ${String(watchBuffer)})`, { field: 'watchBuffer' });
  }
  return {
    dataDir: isAbsolute(options.dataDir) ? options.dataDir : resolve(options.dataDir),
    durable: options.durable ?? DEFAULT_FS_STORAGE_OPTIONS.durable,
    watchBuffer,
  };
}

const CRASHLOG_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const DEFAULT_CRASHLOG_KEEP = 50;

function validateCrashlogId(id: string): string {
  if (typeof id !== 'string' || !CRASHLOG_ID.test(id)) {
    throw new InvalidInputError('invalid_argument', `crashlog id ${JSON.stringify(id)} is invalid: expected 1 to 128 letters, digits, '.', '_' or '-'`, { field: 'id' });
  }
  return id;
}

async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function newestFirst(a: CrashlogSummary, b: CrashlogSummary): number {
  return b.timestamp - a.timestamp || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

/**
 * Storage in a local directory. Every write is a temp file + fsync + rename, so a crash leaves
 * either the old or the new content. One engine process per data dir.
 */
export class FsStorage implements Storage {
  readonly kind = 'fs';
  readonly location: string;
  private readonly options: Required<FsStorageOptions>;
  private readonly watchers = new Set<AsyncChannel<StorageChange>>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(options: FsStorageOptions) {
    this.options = resolveFsStorageOptions(options);
    this.location = this.options.dataDir;
  }

  static async open(options: FsStorageOptions): Promise<FsStorage> {
    const storage = new FsStorage(options);
    await storage.sweepTempFiles();
    return storage;
  }

  private path(...parts: string[]): string {
    return join(this.options.dataDir, ...parts);
  }

  private appDir(name: string): string {
    return this.path('apps', name);
  }

  private archivePath(name: string, sha256: string): string {
    return this.path('apps', name, `${sha256}.archive`);
  }

  private check(): void {
    if (this.closed) throw new EngineError('storage_error', `storage at ${this.location} is closed`);
  }

  /** Runs read-modify-write sections on one key one at a time. */
  private async exclusive<T>(key: string, section: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const current = previous.then(section, section);
    const tail = current.catch(() => undefined);
    this.locks.set(key, tail);
    try {
      return await current;
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }

  private emit(change: StorageChange): void {
    for (const channel of this.watchers) {
      if (channel.size >= this.options.watchBuffer) {
        channel.fail(new EngineError('storage_error', `storage watcher fell behind by ${channel.size} changes; list again and re-watch`));
        this.watchers.delete(channel);
      } else {
        channel.push(change);
      }
    }
  }

  private writeJson(path: string, value: unknown): Promise<void> {
    return writeJsonAtomic(path, value, { durable: this.options.durable });
  }

  // Apps

  async putApp(record: AppRecord, archivePath: string): Promise<void> {
    this.check();
    const name = validateName('app', record?.name);
    await checkArchiveFile(record, archivePath);
    await this.exclusive(`app:${name}`, async () => {
      // Archive first, then the record that points at it: a reader never sees a record without its bytes.
      await this.moveInto(archivePath, this.archivePath(name, record.sha256));
      await this.writeJson(join(this.appDir(name), 'record.json'), record);
      for (const file of await readdir(this.appDir(name))) {
        if (file.endsWith('.archive') && file !== `${record.sha256}.archive`) await rm(join(this.appDir(name), file), { force: true });
      }
    });
    this.emit({ kind: 'app', name, removed: false });
  }

  /** Puts the file at `target` atomically: renamed when on the same file system, else copied beside it and renamed. */
  private async moveInto(source: string, target: string): Promise<void> {
    const directory = join(target, '..');
    await mkdir(directory, { recursive: true });
    if (this.options.durable) await syncFile(source);
    try {
      await rename(source, target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
      const temp = join(directory, `.${randomBytes(6).toString('hex')}.archive.tmp-${randomBytes(6).toString('hex')}`);
      try {
        await copyFile(source, temp, fsConstants.COPYFILE_EXCL);
        if (this.options.durable) await syncFile(temp);
        await rename(temp, target);
      } catch (copyError) {
        await rm(temp, { force: true });
        throw copyError;
      }
    }
    if (this.options.durable) await syncDirectory(directory);
  }

  async getApp(name: string): Promise<AppRecord | undefined> {
    this.check();
    return readJsonFile<AppRecord>(join(this.appDir(validateName('app', name)), 'record.json'));
  }

  async openArchive(name: string): Promise<Readable> {
    const record = await this.getApp(name);
    if (record) {
      try {
        // Opened before returning: a later upload replacing the file does not change what this stream reads.
        const handle = await open(this.archivePath(name, record.sha256), 'r');
        return handle.createReadStream();
      } catch (error) {
        if (!isMissing(error)) throw new EngineError('storage_error', `cannot read the archive of app ${name}: ${(error as Error).message}`, { cause: error });
      }
    }
    throw new NotFoundError('app_not_found', `app ${name} is not uploaded`);
  }

  async listApps(): Promise<AppRecord[]> {
    this.check();
    const records: AppRecord[] = [];
    for (const name of await this.listDir(this.path('apps'))) {
      const record = await readJsonFile<AppRecord>(join(this.appDir(name), 'record.json'));
      if (record) records.push(record);
    }
    return records.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async removeApp(name: string): Promise<boolean> {
    this.check();
    validateName('app', name);
    const existed = await this.exclusive(`app:${name}`, async () => {
      const record = await readJsonFile<AppRecord>(join(this.appDir(name), 'record.json'));
      await rm(this.appDir(name), { recursive: true, force: true });
      await rm(this.path('crashlogs', name), { recursive: true, force: true });
      return record !== undefined;
    });
    if (existed) this.emit({ kind: 'app', name, removed: true });
    return existed;
  }

  // Profiles

  async putProfile(name: string, profile: Profile): Promise<void> {
    this.check();
    validateName('profile', name);
    await this.writeJson(this.path('profiles', `${name}.json`), profile);
    this.emit({ kind: 'profile', name, removed: false });
  }

  async getProfile(name: string): Promise<Profile | undefined> {
    this.check();
    return readJsonFile<Profile>(this.path('profiles', `${validateName('profile', name)}.json`));
  }

  async listProfiles(): Promise<string[]> {
    this.check();
    const files = await this.listDir(this.path('profiles'));
    return files
      .filter((file) => file.endsWith('.json') && !file.startsWith('.'))
      .map((file) => file.slice(0, -'.json'.length))
      .sort();
  }

  async removeProfile(name: string): Promise<boolean> {
    this.check();
    validateName('profile', name);
    const existed = await this.removeFile(this.path('profiles', `${name}.json`));
    if (existed) this.emit({ kind: 'profile', name, removed: true });
    return existed;
  }

  // Runlist

  async getRunlist(): Promise<Runlist> {
    this.check();
    return (await readJsonFile<Runlist>(this.path('runlist.json'))) ?? {};
  }

  async addToRunlist(app: string, profile: string): Promise<Runlist> {
    this.check();
    validateName('app', app);
    validateName('profile', profile);
    return this.updateRunlist((runlist) => {
      runlist[app] = profile;
    });
  }

  async removeFromRunlist(app: string): Promise<Runlist> {
    this.check();
    validateName('app', app);
    return this.updateRunlist((runlist) => {
      delete runlist[app];
    });
  }

  private async updateRunlist(change: (runlist: Runlist) => void): Promise<Runlist> {
    const result = await this.exclusive('runlist', async () => {
      const runlist = await this.getRunlist();
      const before = JSON.stringify(runlist);
      change(runlist);
      const changed = JSON.stringify(runlist) !== before;
      if (changed) await this.writeJson(this.path('runlist.json'), runlist);
      return { runlist, changed };
    });
    if (result.changed) this.emit({ kind: 'runlist' });
    return { ...result.runlist };
  }

  // Crashlogs

  async addCrashlog(entry: CrashlogEntry, keep = DEFAULT_CRASHLOG_KEEP): Promise<void> {
    this.check();
    const app = validateName('app', entry.app);
    const id = validateCrashlogId(entry.id);
    if (!Number.isSafeInteger(keep) || keep < 1) {
      throw new InvalidInputError('invalid_argument', `crashlog "keep" must be an integer >= 1 (got ${String(keep)})`, { field: 'keep' });
    }
    await this.exclusive(`crashlogs:${app}`, async () => {
      await this.writeJson(this.path('crashlogs', app, `${id}.json`), entry);
      const files = (await this.listDir(this.path('crashlogs', app))).filter((file) => file.endsWith('.json') && !file.startsWith('.'));
      if (files.length <= keep) return;
      const all = await this.readCrashlogs(app);
      for (const old of all.slice(keep)) await rm(this.path('crashlogs', app, `${old.id}.json`), { force: true });
    });
  }

  async listCrashlogs(app: string): Promise<CrashlogSummary[]> {
    this.check();
    validateName('app', app);
    return (await this.readCrashlogs(app)).map(({ lines: _lines, ...summary }) => summary);
  }

  async getCrashlog(app: string, id: string): Promise<CrashlogEntry | undefined> {
    this.check();
    validateName('app', app);
    validateCrashlogId(id);
    return readJsonFile<CrashlogEntry>(this.path('crashlogs', app, `${id}.json`));
  }

  async removeCrashlogs(app: string): Promise<number> {
    this.check();
    validateName('app', app);
    return this.exclusive(`crashlogs:${app}`, async () => {
      const count = (await this.listDir(this.path('crashlogs', app))).filter((file) => file.endsWith('.json') && !file.startsWith('.')).length;
      await rm(this.path('crashlogs', app), { recursive: true, force: true });
      return count;
    });
  }

  private async readCrashlogs(app: string): Promise<CrashlogEntry[]> {
    const entries: CrashlogEntry[] = [];
    for (const file of await this.listDir(this.path('crashlogs', app))) {
      if (!file.endsWith('.json') || file.startsWith('.')) continue;
      const entry = await readJsonFile<CrashlogEntry>(this.path('crashlogs', app, file));
      if (entry) entries.push(entry);
    }
    return entries.sort(newestFirst);
  }

  // Watch and lifecycle

  watch(): AsyncIterable<StorageChange> {
    const channel: AsyncChannel<StorageChange> = new AsyncChannel<StorageChange>(this.options.watchBuffer, () => this.watchers.delete(channel));
    if (this.closed) channel.close();
    else this.watchers.add(channel);
    return channel;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.locks.values()]);
    for (const channel of this.watchers) channel.close();
    this.watchers.clear();
  }

  private async listDir(path: string): Promise<string[]> {
    try {
      return await readdir(path);
    } catch (error) {
      if (isMissing(error)) return [];
      throw new EngineError('storage_error', `cannot list ${path}: ${(error as Error).message}`, { cause: error });
    }
  }

  private async removeFile(path: string): Promise<boolean> {
    try {
      await rm(path);
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw new EngineError('storage_error', `cannot remove ${path}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Temp files left by a crash mid-write (`.<name>.tmp-<random>`). */
  private async sweepTempFiles(): Promise<void> {
    const dirs = [this.options.dataDir, this.path('profiles')];
    for (const app of await this.listDir(this.path('apps'))) dirs.push(this.appDir(app));
    for (const app of await this.listDir(this.path('crashlogs'))) dirs.push(this.path('crashlogs', app));
    for (const dir of dirs) {
      for (const file of await this.listDir(dir)) {
        if (file.startsWith('.') && file.includes('.tmp-')) await rm(join(dir, file), { force: true });
      }
    }
  }
}
