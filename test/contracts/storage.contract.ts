import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EngineError } from '../../engine/errors/index.js';
import type { AppRecord, CrashlogEntry, Storage, StorageChange } from '../../engine/storage/types.js';
import type { Profile } from '../../manifests/types.js';
import { DEFAULT_PROFILE } from '../../manifests/validate.js';

export interface StorageFixture {
  /** A fresh, empty storage. */
  storage: Storage;
  /** Closes the storage (it may already be closed) and removes everything it stored. */
  cleanup(): Promise<void>;
}

export function makeRecord(name: string, archive: Buffer, uploadedAt = Date.now()): AppRecord {
  return {
    name,
    manifest: { name, plugin: 'python', entrypoint: 'main.py', environment: { MODE: 'test' }, events: { ping: {}, slow: { timeout: 2.5 } } },
    sha256: createHash('sha256').update(archive).digest('hex'),
    size: archive.length,
    uploadedAt,
  };
}

let fileDir: string | undefined;
let fileCount = 0;
process.once('exit', () => {
  if (fileDir) rmSync(fileDir, { recursive: true, force: true });
});

/** Writes bytes to a fresh temp file (as the upload spool would) and returns its path. */
export function archiveFile(bytes: Uint8Array): string {
  fileDir ??= mkdtempSync(join(tmpdir(), 'cocaine-archives-'));
  const path = join(fileDir, `${++fileCount}.upload`);
  writeFileSync(path, bytes);
  return path;
}

/** putApp from a temp file holding `bytes`; the file is removed afterwards, as the upload path does. */
export async function putAppBytes(storage: Storage, record: AppRecord, bytes: Uint8Array): Promise<void> {
  const path = archiveFile(bytes);
  try {
    await storage.putApp(record, path);
  } finally {
    rmSync(path, { force: true });
  }
}

/** Everything openArchive streams, and in how many chunks. */
export async function readArchiveChunks(storage: Storage, name: string): Promise<{ bytes: Buffer; chunks: number; largest: number }> {
  const chunks: Buffer[] = [];
  for await (const chunk of await storage.openArchive(name)) chunks.push(chunk as Buffer);
  return { bytes: Buffer.concat(chunks), chunks: chunks.length, largest: Math.max(0, ...chunks.map((c) => c.length)) };
}

export async function readArchiveBytes(storage: Storage, name: string): Promise<Buffer> {
  return (await readArchiveChunks(storage, name)).bytes;
}

export function makeProfile(poolLimit: number): Profile {
  return { ...structuredClone(DEFAULT_PROFILE), 'pool-limit': poolLimit, isolate: { type: 'docker', args: { memory: 67108864, image: 'python:3-slim' } } };
}

function makeCrashlog(app: string, id: string, timestamp: number): CrashlogEntry {
  return { id, app, workerId: `worker-${id}`, timestamp, reason: `exited with code 1 (${id})`, lines: [`line one of ${id}`, 'line two'] };
}

/** Reads changes until `done` says enough, failing after `timeoutMs`. */
async function collect(iterator: AsyncIterator<StorageChange>, done: (seen: StorageChange[]) => boolean, timeoutMs = 5000): Promise<StorageChange[]> {
  const seen: StorageChange[] = [];
  const deadline = Date.now() + timeoutMs;
  while (!done(seen)) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new Error(`timed out waiting for storage changes; saw ${JSON.stringify(seen)}`);
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      iterator.next(),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), remaining))),
    ]);
    clearTimeout(timer);
    if (result === 'timeout') continue;
    if (result.done) throw new Error(`watch ended early; saw ${JSON.stringify(seen)}`);
    seen.push(result.value);
  }
  return seen;
}

const same = (a: StorageChange, b: StorageChange) => JSON.stringify(a) === JSON.stringify(b);

async function rejection(promise: Promise<unknown>): Promise<EngineError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EngineError);
  return error as EngineError;
}

/** The behaviour every Storage backend must have; each backend's test calls this with its own factory. */
export function describeStorageContract(name: string, factory: () => Promise<StorageFixture>): void {
  describe(`Storage contract: ${name}`, () => {
    let fixture: StorageFixture;
    let storage: Storage;

    beforeEach(async () => {
      fixture = await factory();
      storage = fixture.storage;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    it('says what it is and starts empty', async () => {
      expect(typeof storage.kind).toBe('string');
      expect(storage.kind.length).toBeGreaterThan(0);
      expect(storage.location.length).toBeGreaterThan(0);
      expect(await storage.listApps()).toEqual([]);
      expect(await storage.listProfiles()).toEqual([]);
      expect(await storage.getRunlist()).toEqual({});
    });

    describe('apps', () => {
      it('round-trips the record and the exact archive bytes', async () => {
        const archive = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(1024 * 1024 + 17)]);
        const record = makeRecord('echo', archive);
        await putAppBytes(storage, record, archive);
        expect(await storage.getApp('echo')).toEqual(record);
        const read = await readArchiveBytes(storage, 'echo');
        expect(read.length).toBe(archive.length);
        expect(read.equals(archive)).toBe(true);
      });

      it('streams archives from a file and back in chunks, never as one buffer', async () => {
        const archive = randomBytes(6 * 1024 * 1024 + 5);
        const record = makeRecord('large', archive);
        const path = archiveFile(archive);
        await storage.putApp(record, path);
        // The caller removes the file afterwards if the backend did not move it: the stored copy is independent.
        rmSync(path, { force: true });
        const read = await readArchiveChunks(storage, 'large');
        expect(read.bytes.equals(archive)).toBe(true);
        expect(read.chunks).toBeGreaterThan(4);
        expect(read.largest).toBeLessThanOrEqual(1024 * 1024);
        // A reader that stops early leaves nothing in the way of the next one.
        const early = await storage.openArchive('large');
        for await (const _chunk of early) break;
        expect((await readArchiveBytes(storage, 'large')).equals(archive)).toBe(true);
      });

      it('refuses a file that does not match its record, naming sha256, and keeps the stored version', async () => {
        const stored = Buffer.from('the stored version');
        const record = makeRecord('echo', stored);
        await putAppBytes(storage, record, stored);
        const other = Buffer.from('other bytes');
        const path = archiveFile(other);
        const error = await rejection(storage.putApp({ ...makeRecord('echo', stored), uploadedAt: 1 }, path));
        expect(error).toMatchObject({ code: 'invalid_argument', field: 'sha256' });
        expect(existsSync(path)).toBe(true);
        expect(await storage.getApp('echo')).toEqual(record);
        expect((await readArchiveBytes(storage, 'echo')).equals(stored)).toBe(true);
      });

      it('replaces an app on a second upload', async () => {
        const first = Buffer.from('first version');
        const second = Buffer.from('second version, longer');
        await putAppBytes(storage, makeRecord('echo', first, 1000), first);
        const record = makeRecord('echo', second, 2000);
        await putAppBytes(storage, record, second);
        expect(await storage.getApp('echo')).toEqual(record);
        expect((await readArchiveBytes(storage, 'echo')).equals(second)).toBe(true);
        expect(await storage.listApps()).toEqual([record]);
      });

      it('lists every app', async () => {
        const names = ['zeta', 'alpha', 'mid.app_1'];
        const records = [];
        for (const app of names) {
          const archive = Buffer.from(`archive of ${app}`);
          records.push(makeRecord(app, archive));
          await putAppBytes(storage, records.at(-1) as AppRecord, archive);
        }
        const listed = await storage.listApps();
        const byName = (a: AppRecord, b: AppRecord) => a.name.localeCompare(b.name);
        expect([...listed].sort(byName)).toEqual([...records].sort(byName));
      });

      it('removes the app, its archive and its crashlogs, and nothing else', async () => {
        for (const app of ['gone', 'kept']) {
          const archive = Buffer.from(app);
          await putAppBytes(storage, makeRecord(app, archive), archive);
          await storage.addCrashlog(makeCrashlog(app, `${app}-1`, 1000));
        }
        expect(await storage.removeApp('gone')).toBe(true);
        expect(await storage.getApp('gone')).toBeUndefined();
        expect((await rejection(storage.openArchive('gone'))).code).toBe('app_not_found');
        expect(await storage.listCrashlogs('gone')).toEqual([]);
        expect(await storage.getCrashlog('gone', 'gone-1')).toBeUndefined();
        expect((await storage.listApps()).map((r) => r.name)).toEqual(['kept']);
        expect((await storage.listCrashlogs('kept')).map((c) => c.id)).toEqual(['kept-1']);
        expect(await storage.removeApp('gone')).toBe(false);
      });

      it('answers for unknown apps without throwing, except openArchive', async () => {
        expect(await storage.getApp('nope')).toBeUndefined();
        expect(await storage.removeApp('nope')).toBe(false);
        const error = await rejection(storage.openArchive('nope'));
        expect(['app_not_found', 'not_found']).toContain(error.code);
        expect(error.message).toContain('nope');
      });
    });

    describe('profiles', () => {
      it('round-trips, lists, overwrites and removes', async () => {
        expect(await storage.getProfile('default')).toBeUndefined();
        await storage.putProfile('default', makeProfile(10));
        await storage.putProfile('big', makeProfile(40));
        expect(await storage.getProfile('default')).toEqual(makeProfile(10));
        expect([...(await storage.listProfiles())].sort()).toEqual(['big', 'default']);
        await storage.putProfile('default', makeProfile(3));
        expect((await storage.getProfile('default'))?.['pool-limit']).toBe(3);
        expect(await storage.removeProfile('default')).toBe(true);
        expect(await storage.removeProfile('default')).toBe(false);
        expect(await storage.getProfile('default')).toBeUndefined();
        expect(await storage.listProfiles()).toEqual(['big']);
      });
    });

    describe('runlist', () => {
      it('adds, overwrites and removes entries, returning the new runlist', async () => {
        expect(await storage.addToRunlist('echo', 'default')).toEqual({ echo: 'default' });
        expect(await storage.addToRunlist('sum', 'big')).toEqual({ echo: 'default', sum: 'big' });
        expect(await storage.addToRunlist('echo', 'big')).toEqual({ echo: 'big', sum: 'big' });
        expect(await storage.getRunlist()).toEqual({ echo: 'big', sum: 'big' });
        expect(await storage.removeFromRunlist('echo')).toEqual({ sum: 'big' });
        expect(await storage.removeFromRunlist('unknown')).toEqual({ sum: 'big' });
        expect(await storage.getRunlist()).toEqual({ sum: 'big' });
      });

      it('keeps every entry under concurrent additions', async () => {
        const apps = Array.from({ length: 12 }, (_, i) => `app${i}`);
        await Promise.all(apps.map((app) => storage.addToRunlist(app, 'default')));
        expect(Object.keys(await storage.getRunlist()).sort()).toEqual([...apps].sort());
      });
    });

    describe('crashlogs', () => {
      it('stores entries and lists summaries newest first', async () => {
        await storage.addCrashlog(makeCrashlog('echo', 'c2', 2000));
        await storage.addCrashlog(makeCrashlog('echo', 'c3', 3000));
        await storage.addCrashlog(makeCrashlog('echo', 'c1', 1000));
        const list = await storage.listCrashlogs('echo');
        expect(list.map((c) => c.id)).toEqual(['c3', 'c2', 'c1']);
        expect(list[0]).toEqual({ id: 'c3', app: 'echo', workerId: 'worker-c3', timestamp: 3000, reason: 'exited with code 1 (c3)' });
        expect(await storage.getCrashlog('echo', 'c2')).toEqual(makeCrashlog('echo', 'c2', 2000));
        expect(await storage.getCrashlog('echo', 'c9')).toBeUndefined();
        expect(await storage.listCrashlogs('other')).toEqual([]);
      });

      it('keeps only the newest `keep` entries', async () => {
        for (let i = 1; i <= 6; i++) await storage.addCrashlog(makeCrashlog('echo', `c${i}`, i * 1000), 3);
        expect((await storage.listCrashlogs('echo')).map((c) => c.id)).toEqual(['c6', 'c5', 'c4']);
        expect(await storage.getCrashlog('echo', 'c1')).toBeUndefined();
        // An older entry than all kept ones is itself the one dropped.
        await storage.addCrashlog(makeCrashlog('echo', 'c0', 10), 3);
        expect((await storage.listCrashlogs('echo')).map((c) => c.id)).toEqual(['c6', 'c5', 'c4']);
      });

      it('keeps 50 by default', async () => {
        for (let i = 0; i < 52; i++) await storage.addCrashlog(makeCrashlog('busy', `c${String(i).padStart(2, '0')}`, 1000 + i));
        const list = await storage.listCrashlogs('busy');
        expect(list).toHaveLength(50);
        expect(list[0]?.id).toBe('c51');
        expect(list.at(-1)?.id).toBe('c02');
      });

      it('removes all crashlogs of one app, returning how many', async () => {
        await storage.addCrashlog(makeCrashlog('echo', 'a', 1));
        await storage.addCrashlog(makeCrashlog('echo', 'b', 2));
        await storage.addCrashlog(makeCrashlog('other', 'c', 3));
        expect(await storage.removeCrashlogs('echo')).toBe(2);
        expect(await storage.removeCrashlogs('echo')).toBe(0);
        expect(await storage.listCrashlogs('echo')).toEqual([]);
        expect((await storage.listCrashlogs('other')).map((c) => c.id)).toEqual(['c']);
      });
    });

    describe('watch', () => {
      it('reports changes made through this instance', async () => {
        const iterator = storage.watch()[Symbol.asyncIterator]();
        const archive = Buffer.from('watched');
        await putAppBytes(storage, makeRecord('echo', archive), archive);
        await storage.putProfile('default', makeProfile(2));
        await storage.addToRunlist('echo', 'default');
        await storage.removeFromRunlist('echo');
        await storage.removeProfile('default');
        await storage.removeApp('echo');
        const expected: StorageChange[] = [
          { kind: 'app', name: 'echo', removed: false },
          { kind: 'profile', name: 'default', removed: false },
          { kind: 'runlist' },
          { kind: 'profile', name: 'default', removed: true },
          { kind: 'app', name: 'echo', removed: true },
        ];
        const seen = await collect(iterator, (changes) => expected.every((e) => changes.some((c) => same(c, e))) && changes.filter((c) => c.kind === 'runlist').length >= 2);
        const index = (change: StorageChange) => seen.findIndex((c) => same(c, change));
        expect(index(expected[0] as StorageChange)).toBeLessThan(index(expected[4] as StorageChange));
        expect(index(expected[1] as StorageChange)).toBeLessThan(index(expected[3] as StorageChange));
        await iterator.return?.();
      });

      it('serves several watchers, and one that stops does not affect the others', async () => {
        const first = storage.watch()[Symbol.asyncIterator]();
        const second = storage.watch()[Symbol.asyncIterator]();
        await storage.putProfile('p1', makeProfile(1));
        await collect(first, (seen) => seen.some((c) => same(c, { kind: 'profile', name: 'p1', removed: false })));
        await first.return?.();
        await storage.putProfile('p2', makeProfile(2));
        const seen = await collect(second, (changes) => changes.some((c) => same(c, { kind: 'profile', name: 'p2', removed: false })));
        expect(seen.some((c) => same(c, { kind: 'profile', name: 'p1', removed: false }))).toBe(true);
        await second.return?.();
      });

      it('ends on close()', async () => {
        const iterator = storage.watch()[Symbol.asyncIterator]();
        const next = iterator.next();
        await storage.close();
        let timer: NodeJS.Timeout | undefined;
        const result = await Promise.race([next, new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 5000)))]);
        clearTimeout(timer);
        expect(result).toEqual({ value: undefined, done: true });
      });
    });

    describe('names', () => {
      it('refuses invalid names with invalid_argument', async () => {
        expect((await rejection(storage.getApp('../etc'))).code).toBe('invalid_argument');
        expect((await rejection(storage.openArchive('a/b'))).code).toBe('invalid_argument');
        expect((await rejection(storage.putProfile('a b', makeProfile(1)))).code).toBe('invalid_argument');
        expect((await rejection(storage.getProfile('.hidden'))).code).toBe('invalid_argument');
        expect((await rejection(storage.addToRunlist('ok', 'bad/profile'))).code).toBe('invalid_argument');
        expect((await rejection(storage.addToRunlist('', 'ok'))).code).toBe('invalid_argument');
        expect((await rejection(storage.listCrashlogs('..'))).code).toBe('invalid_argument');
        const archive = Buffer.from('x');
        expect((await rejection(putAppBytes(storage, makeRecord('no/slash', archive), archive))).code).toBe('invalid_argument');
        expect(await storage.listApps()).toEqual([]);
      });
    });
  });
}
