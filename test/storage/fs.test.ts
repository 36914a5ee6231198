import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsStorage } from '../../engine/storage/fs.js';
import { archiveFile, describeStorageContract, makeProfile, makeRecord, putAppBytes, readArchiveBytes } from '../contracts/storage.contract.js';

describeStorageContract('fs', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'fs-storage-'));
  const storage = await FsStorage.open({ dataDir });
  return {
    storage,
    async cleanup() {
      await storage.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

describe('FsStorage specifics', () => {
  let dataDir: string;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'fs-storage-'));
  });

  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps everything across a reopen', async () => {
    const archive = Buffer.from('persisted archive');
    const record = makeRecord('echo', archive);
    const first = await FsStorage.open({ dataDir });
    await putAppBytes(first, record, archive);
    await first.putProfile('default', makeProfile(4));
    await first.addToRunlist('echo', 'default');
    await first.addCrashlog({ id: 'c1', app: 'echo', workerId: 'w1', timestamp: 5, reason: 'killed by SIGSEGV', lines: ['boom'] });
    await first.close();

    const second = await FsStorage.open({ dataDir });
    expect(second.location).toBe(dataDir);
    expect(await second.getApp('echo')).toEqual(record);
    expect((await readArchiveBytes(second, 'echo')).equals(archive)).toBe(true);
    expect(await second.getProfile('default')).toEqual(makeProfile(4));
    expect(await second.getRunlist()).toEqual({ echo: 'default' });
    expect((await second.getCrashlog('echo', 'c1'))?.lines).toEqual(['boom']);
    await second.close();
  });

  it('uses the documented layout and leaves no temp files', async () => {
    const archive = Buffer.from('layout');
    const storage = await FsStorage.open({ dataDir });
    await putAppBytes(storage, makeRecord('echo', archive), archive);
    await putAppBytes(storage, makeRecord('echo', Buffer.from('v2')), Buffer.from('v2'));
    await storage.putProfile('default', makeProfile(1));
    await storage.addToRunlist('echo', 'default');
    await storage.addCrashlog({ id: 'c1', app: 'echo', workerId: 'w', timestamp: 1, reason: 'r', lines: [] });
    await storage.close();
    expect((await readdir(dataDir)).sort()).toEqual(['apps', 'crashlogs', 'profiles', 'runlist.json']);
    const sha = createHash('sha256').update('v2').digest('hex');
    expect((await readdir(join(dataDir, 'apps', 'echo'))).sort()).toEqual([`${sha}.archive`, 'record.json']);
    expect(await readdir(join(dataDir, 'profiles'))).toEqual(['default.json']);
    expect(await readdir(join(dataDir, 'crashlogs', 'echo'))).toEqual(['c1.json']);
  });

  it('moves a spooled archive into place by rename on the same file system, by copy across file systems', async () => {
    const storage = await FsStorage.open({ dataDir });
    const same = Buffer.from('same file system');
    const local = join(dataDir, 'spooled.upload');
    await writeFile(local, same);
    await storage.putApp(makeRecord('local', same), local);
    expect(existsSync(local)).toBe(false);
    expect((await readArchiveBytes(storage, 'local')).equals(same)).toBe(true);
    // /dev/shm is a tmpfs: a rename from there into the data dir fails with EXDEV.
    const elsewhere = await mkdtemp('/dev/shm/fs-storage-');
    try {
      expect(statSync(elsewhere).dev).not.toBe(statSync(dataDir).dev);
      const other = Buffer.from('another file system');
      const remote = join(elsewhere, 'spooled.upload');
      await writeFile(remote, other);
      await storage.putApp(makeRecord('remote', other), remote);
      expect((await readArchiveBytes(storage, 'remote')).equals(other)).toBe(true);
      expect((await readdir(join(dataDir, 'apps', 'remote'))).filter((file) => file.includes('.tmp-'))).toEqual([]);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
    await storage.close();
  });

  it('refuses a record that does not match its archive', async () => {
    const storage = await FsStorage.open({ dataDir });
    const record = makeRecord('echo', Buffer.from('one'));
    await expect(storage.putApp(record, archiveFile(Buffer.from('two')))).rejects.toMatchObject({ code: 'invalid_argument', field: 'sha256' });
    expect(await storage.getApp('echo')).toBeUndefined();
    await storage.close();
  });

  it('sweeps temp files left by a crash and reports corrupt files by path', async () => {
    const storage = await FsStorage.open({ dataDir });
    await storage.putProfile('default', makeProfile(1));
    await storage.close();
    await writeFile(join(dataDir, 'profiles', '.default.json.tmp-abc123'), '{"half":');
    await writeFile(join(dataDir, 'profiles', 'broken.json'), '{"half":');
    const reopened = await FsStorage.open({ dataDir });
    expect((await readdir(join(dataDir, 'profiles'))).sort()).toEqual(['broken.json', 'default.json']);
    await expect(reopened.getProfile('broken')).rejects.toMatchObject({ code: 'storage_error', message: expect.stringContaining('broken.json') });
    await reopened.close();
  });

  it('refuses calls after close and bad options', async () => {
    const storage = await FsStorage.open({ dataDir });
    await storage.close();
    await expect(storage.listApps()).rejects.toMatchObject({ code: 'storage_error' });
    expect(() => new FsStorage({ dataDir: '' })).toThrow(/"dataDir" must be a non-empty path/);
  });

  it('fails a watcher that stops reading instead of buffering without bound', async () => {
    const storage = await FsStorage.open({ dataDir, watchBuffer: 4, durable: false });
    const iterator = storage.watch()[Symbol.asyncIterator]();
    for (let i = 0; i < 6; i++) await storage.putProfile(`p${i}`, makeProfile(1));
    const received: unknown[] = [];
    await expect(
      (async () => {
        for (;;) {
          const result = await iterator.next();
          if (result.done) return;
          received.push(result.value);
        }
      })(),
    ).rejects.toMatchObject({ code: 'storage_error' });
    expect(received).toHaveLength(4);
    await storage.close();
  });
});
