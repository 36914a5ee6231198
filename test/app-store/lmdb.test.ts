import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LmdbAppStore } from '../../engine/app-store/lmdb.js';
import type { AppStore, AppStoreOptions } from '../../engine/app-store/types.js';
import { describeAppStoreContract } from '../contracts/app-store.contract.js';

describeAppStoreContract('lmdb', async (options?: AppStoreOptions) => {
  const dir = join(await mkdtemp(join(tmpdir(), 'app-store-')), 'app-store');
  let current: AppStore = await LmdbAppStore.open({ dir, ...options });
  return {
    store: current,
    async reopen() {
      await current.close();
      current = await LmdbAppStore.open({ dir, ...options });
      return current;
    },
    // One process has one store per directory: a second writer is a second caller of it.
    peer: async () => current,
    async cleanup() {
      await current.close();
      await rm(join(dir, '..'), { recursive: true, force: true });
    },
  };
});

describe('LmdbAppStore specifics', () => {
  let parent: string;
  beforeEach(async () => {
    parent = await mkdtemp(join(tmpdir(), 'app-store-'));
  });
  afterEach(async () => {
    await rm(parent, { recursive: true, force: true });
  });

  it('keeps values, revisions and key counts across close and reopen, in one LMDB environment', async () => {
    const dir = join(parent, 'app-store');
    const first = await LmdbAppStore.open({ dir, maxKeysPerApp: 2 });
    const a = await first.put('app', 'a', Buffer.from('A'));
    const b = await first.put('app', 'b', Buffer.from('B'));
    await first.delete('app', 'b');
    const c = await first.put('app', 'c', Buffer.from('C'));
    await first.close();
    expect((await readdir(dir)).sort()).toEqual(['data.mdb', 'lock.mdb']);

    const second = await LmdbAppStore.open({ dir, maxKeysPerApp: 2 });
    expect(await second.get('app', 'a')).toEqual({ value: Buffer.from('A'), revision: a });
    expect(await second.get('app', 'c')).toEqual({ value: Buffer.from('C'), revision: c });
    expect(await second.get('app', 'b')).toBeUndefined();
    // Revisions go on from the last one issued, even the deleted key's.
    expect(await second.put('app', 'a', Buffer.from('A2'))).toBeGreaterThan(Math.max(a, b, c));
    // The count of keys is taken from the store, not reset to zero.
    await expect(second.put('app', 'd', Buffer.from('D'))).rejects.toMatchObject({ reason: 'quota_exceeded' });
    await second.close();
  });

  it('holds the key quota exactly under parallel creates, and orders parallel writes of one key', async () => {
    const store = await LmdbAppStore.open({ dir: join(parent, 'app-store'), maxKeysPerApp: 5 });
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => store.put('app', `k${i}`, Buffer.from(String(i)))));
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(5);
    for (const result of results) if (result.status === 'rejected') expect(result.reason).toMatchObject({ reason: 'quota_exceeded' });
    expect((await store.list('app')).keys).toHaveLength(5);
    const revisions = await Promise.all(Array.from({ length: 10 }, (_, i) => store.put('other', 'same', Buffer.from(String(i)))));
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    expect(new Set(revisions).size).toBe(10);
    expect(await store.get('other', 'same')).toEqual({ value: Buffer.from('9'), revision: revisions[9] });
    await store.close();
  });

  it('refuses a missing directory, naming the field', async () => {
    await expect(LmdbAppStore.open({ dir: '' })).rejects.toMatchObject({ code: 'invalid_argument', field: 'app-store.dir' });
    await expect(LmdbAppStore.open({ dir: join(parent, 'x'), maxValueBytes: 0 })).rejects.toMatchObject({ field: 'app-store.maxValueBytes' });
  });
});
