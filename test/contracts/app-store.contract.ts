import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EngineError, InvalidInputError } from '../../engine/errors/index.js';
import { AppStoreQuotaError, RevisionMismatchError } from '../../engine/app-store/errors.js';
import type { AppStore, AppStoreOptions } from '../../engine/app-store/types.js';

export interface AppStoreFixture {
  /** A fresh, empty store with the given limits. */
  store: AppStore;
  /**
   * Another handle on the same data: the store closed and opened again (a local backend), or a
   * second connection beside the first (a shared backend). Use the returned handle afterwards.
   */
  reopen(): Promise<AppStore>;
  /** A handle for a second concurrent writer: a second connection, or the same store. */
  peer(): Promise<AppStore>;
  /** Closes every handle and removes everything stored. */
  cleanup(): Promise<void>;
}

async function rejection(promise: Promise<unknown>): Promise<EngineError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EngineError);
  return error as EngineError;
}

async function refusedField(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await rejection(promise);
  expect(error.code).toBe('invalid_argument');
  return (error as InvalidInputError).field;
}

async function allKeys(store: AppStore, app: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let after: string | undefined;
  do {
    const page = await store.list(app, prefix, after === undefined ? {} : { after });
    keys.push(...page.keys);
    after = page.next;
  } while (after !== undefined);
  return keys;
}

/** The behaviour every AppStore backend must have; each backend's test calls this with its own factory. */
export function describeAppStoreContract(name: string, factory: (options?: AppStoreOptions) => Promise<AppStoreFixture>): void {
  describe(`AppStore contract: ${name}`, () => {
    let fixture: AppStoreFixture;
    let store: AppStore;
    /** For tests that need other limits: replaces the default fixture. */
    const withOptions = async (options: AppStoreOptions): Promise<void> => {
      await fixture.cleanup();
      fixture = await factory(options);
      store = fixture.store;
    };

    beforeEach(async () => {
      fixture = await factory();
      store = fixture.store;
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    it('says what it is and starts empty', async () => {
      expect(store.kind.length).toBeGreaterThan(0);
      expect(store.location.length).toBeGreaterThan(0);
      expect(await store.get('app', 'missing')).toBeUndefined();
      expect(await store.list('app')).toEqual({ keys: [] });
    });

    it('round-trips exact bytes with growing revisions, and keeps its own copy', async () => {
      const value = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(64 * 1024)]);
      const first = await store.put('app', 'blob', value);
      expect(first).toBeGreaterThan(0);
      value.fill(0);
      const read = await store.get('app', 'blob');
      expect(read?.revision).toBe(first);
      expect(read?.value.subarray(0, 256).equals(Buffer.from(Array.from({ length: 256 }, (_, i) => i)))).toBe(true);
      const second = await store.put('app', 'blob', new Uint8Array([1, 2, 3]));
      expect(second).toBeGreaterThan(first);
      expect(await store.get('app', 'blob')).toEqual({ value: Buffer.from([1, 2, 3]), revision: second });
      const empty = await store.put('app', 'empty', Buffer.alloc(0));
      expect(await store.get('app', 'empty')).toEqual({ value: Buffer.alloc(0), revision: empty });
    });

    it('keeps apps apart, whatever their keys spell', async () => {
      const hostile = ['../b', '..', '../b/secret', 'b', 'b.secret', 'b/secret', '=2e', '%2e', '\\b', 'b\\secret', '*', '>', 'a.b', '.'];
      for (const key of hostile) await store.put('a', key, Buffer.from(`a:${key}`));
      // The app 'a.b' and the key 'b.secret' of app 'a', the app 'b' and the key 'secret': no key of one is another's.
      await store.put('b', 'secret', Buffer.from('b:secret'));
      await store.put('a.b', 'secret', Buffer.from('a.b:secret'));
      await store.put('ab', 'secret', Buffer.from('ab:secret'));
      expect(await store.get('b', 'secret')).toMatchObject({ value: Buffer.from('b:secret') });
      expect(await store.get('a.b', 'secret')).toMatchObject({ value: Buffer.from('a.b:secret') });
      expect(await store.get('a', 'secret')).toBeUndefined();
      for (const key of hostile) {
        expect((await store.get('a', key))?.value.toString()).toBe(`a:${key}`);
        expect(await store.get('b', key)).toBeUndefined();
        expect(await store.get('ab', key)).toBeUndefined();
      }
      expect(await allKeys(store, 'a')).toEqual([...hostile].sort());
      expect(await allKeys(store, 'b')).toEqual(['secret']);
      expect(await allKeys(store, 'a.b')).toEqual(['secret']);
      expect(await allKeys(store, 'a', 'b')).toEqual(['b', 'b.secret', 'b/secret', 'b\\secret']);
      expect(await allKeys(store, 'a', '../')).toEqual(['../b', '../b/secret']);
      // Deleting in one app leaves the same key of another alone.
      await store.put('b', '../b', Buffer.from('b:../b'));
      expect(await store.delete('a', '../b')).toBe(true);
      expect((await store.get('b', '../b'))?.value.toString()).toBe('b:../b');
      expect(await store.delete('b', 'b')).toBe(false);
      expect((await store.get('a', 'b'))?.value.toString()).toBe('a:b');
    });

    it('compare-and-sets create, update and delete by revision', async () => {
      const created = await store.put('app', 'k', Buffer.from('v1'), { expectedRevision: 0 });
      const exists = await rejection(store.put('app', 'k', Buffer.from('again'), { expectedRevision: 0 }));
      expect(exists).toBeInstanceOf(RevisionMismatchError);
      expect(exists).toMatchObject({ code: 'invalid_argument', reason: 'revision_mismatch', field: 'expectedRevision', expectedRevision: 0, actualRevision: created });
      const updated = await store.put('app', 'k', Buffer.from('v2'), { expectedRevision: created });
      expect(updated).toBeGreaterThan(created);
      expect(await rejection(store.put('app', 'k', Buffer.from('stale'), { expectedRevision: created }))).toMatchObject({ reason: 'revision_mismatch', actualRevision: updated });
      expect(await rejection(store.delete('app', 'k', { expectedRevision: created }))).toMatchObject({ reason: 'revision_mismatch' });
      expect((await store.get('app', 'k'))?.value.toString()).toBe('v2');
      expect(await store.delete('app', 'k', { expectedRevision: updated })).toBe(true);
      expect(await store.get('app', 'k')).toBeUndefined();
      // Gone: an update or a conditional delete against its last revision fails; a plain delete says false.
      expect(await rejection(store.put('app', 'k', Buffer.from('late'), { expectedRevision: updated }))).toMatchObject({ reason: 'revision_mismatch', actualRevision: 0 });
      expect(await rejection(store.delete('app', 'k', { expectedRevision: updated }))).toMatchObject({ reason: 'revision_mismatch', actualRevision: 0 });
      expect(await store.delete('app', 'k')).toBe(false);
      // Created again: a revision it never had, so a stale compare-and-set cannot succeed by chance.
      const recreated = await store.put('app', 'k', Buffer.from('v3'), { expectedRevision: 0 });
      expect(recreated).toBeGreaterThan(updated);
      expect(await store.get('app', 'k')).toEqual({ value: Buffer.from('v3'), revision: recreated });
    });

    it('lists by prefix, one page at a time', async () => {
      const users = Array.from({ length: 12 }, (_, i) => `user/${String(i).padStart(2, '0')}`);
      for (const key of [...users].reverse()) await store.put('app', key, Buffer.from(key));
      for (const key of ['user', 'userx', 'a', 'z/user/1']) await store.put('app', key, Buffer.from(key));
      await store.put('other', 'user/99', Buffer.from('not mine'));
      const first = await store.list('app', 'user/', { limit: 5 });
      expect(first).toEqual({ keys: users.slice(0, 5), next: users[4] });
      const second = await store.list('app', 'user/', { limit: 5, after: first.next });
      expect(second).toEqual({ keys: users.slice(5, 10), next: users[9] });
      const last = await store.list('app', 'user/', { limit: 5, after: second.next });
      expect(last.keys).toEqual(users.slice(10));
      expect(last.next).toBeUndefined();
      expect(await allKeys(store, 'app', 'user')).toEqual(['user', ...users, 'userx']);
      expect((await store.list('app')).keys).toEqual(['a', 'user', ...users, 'userx', 'z/user/1']);
      // `after` before the prefix starts the page at the prefix; after the last key, the page is empty.
      expect((await store.list('app', 'user/', { after: 'a', limit: 2 })).keys).toEqual(users.slice(0, 2));
      expect(await store.list('app', 'user/', { after: 'zzz' })).toEqual({ keys: [] });
      expect(await store.list('app', 'nothing')).toEqual({ keys: [] });
      // A deleted key leaves the listing.
      await store.delete('app', users[3]!);
      expect((await allKeys(store, 'app', 'user/')).length).toBe(11);
    });

    it('refuses what is out of bounds, naming the field', async () => {
      await withOptions({ maxValueBytes: 1024, maxKeysPerApp: 3, maxListPageSize: 10, listPageSize: 10 });
      expect(store.options).toMatchObject({ maxValueBytes: 1024, maxKeysPerApp: 3, maxListPageSize: 10 });
      expect(await refusedField(store.put('app', '', Buffer.from('x')))).toBe('key');
      expect(await refusedField(store.put('app', 'k'.repeat(257), Buffer.from('x')))).toBe('key');
      expect(await refusedField(store.put('app', 'has space', Buffer.from('x')))).toBe('key');
      expect(await refusedField(store.put('app', 'nul\0byte', Buffer.from('x')))).toBe('key');
      expect(await refusedField(store.put('app', 'caf\u00e9', Buffer.from('x')))).toBe('key');
      expect(await refusedField(store.get('app', 'line\nbreak'))).toBe('key');
      expect(await refusedField(store.put('../etc', 'k', Buffer.from('x')))).toBe('app');
      expect(await refusedField(store.get('', 'k'))).toBe('app');
      expect(await refusedField(store.list('a\0b'))).toBe('app');
      expect(await refusedField(store.put('app', 'big', Buffer.alloc(1025)))).toBe('value');
      expect(await refusedField(store.put('app', 'str', 'text' as unknown as Buffer))).toBe('value');
      expect(await refusedField(store.put('app', 'k', Buffer.from('x'), { expectedRevision: -1 }))).toBe('expectedRevision');
      expect(await refusedField(store.delete('app', 'k', { expectedRevision: 0 }))).toBe('expectedRevision');
      expect(await refusedField(store.list('app', '', { limit: 11 }))).toBe('limit');
      expect(await refusedField(store.list('app', '', { limit: 0 }))).toBe('limit');
      expect(await refusedField(store.list('app', 'a b'))).toBe('prefix');
      expect(await refusedField(store.list('app', '', { after: '' }))).toBe('after');
      const longest = 'k'.repeat(256);
      await store.put('app', longest, Buffer.alloc(1024, 7));
      expect((await store.get('app', longest))?.value.length).toBe(1024);
      expect(await store.list('app')).toEqual({ keys: [longest] });
      // The key quota: new keys are refused at the limit; updates, and other apps, are not.
      await store.put('app', 'k1', Buffer.from('1'));
      const k2 = await store.put('app', 'k2', Buffer.from('2'));
      const quota = await rejection(store.put('app', 'k3', Buffer.from('3')));
      expect(quota).toBeInstanceOf(AppStoreQuotaError);
      expect(quota).toMatchObject({ code: 'invalid_argument', reason: 'quota_exceeded', field: 'maxKeysPerApp' });
      expect(await rejection(store.put('app', 'k3', Buffer.from('3'), { expectedRevision: 0 }))).toBeInstanceOf(AppStoreQuotaError);
      // At the limit, a create of an existing key is a mismatch, as below it.
      expect(await rejection(store.put('app', 'k2', Buffer.from('2'), { expectedRevision: 0 }))).toMatchObject({ reason: 'revision_mismatch', actualRevision: k2 });
      await store.put('app', 'k2', Buffer.from('2b'), { expectedRevision: k2 });
      await store.put('app', 'k1', Buffer.from('1b'));
      await store.put('other', 'k3', Buffer.from('3'));
      // A delete frees its slot, at once.
      expect(await store.delete('app', 'k1')).toBe(true);
      await store.put('app', 'k3', Buffer.from('3'));
      expect(await allKeys(store, 'app')).toEqual(['k2', 'k3', longest]);
    });

    it('shows the same values and revisions through another handle', async () => {
      const revision = await store.put('app', 'kept', Buffer.from('persisted'));
      await store.put('app', 'gone', Buffer.from('deleted'));
      await store.delete('app', 'gone');
      const other = await fixture.reopen();
      expect(await other.get('app', 'kept')).toEqual({ value: Buffer.from('persisted'), revision });
      expect(await other.get('app', 'gone')).toBeUndefined();
      expect(await other.list('app')).toEqual({ keys: ['kept'] });
      const next = await other.put('app', 'kept', Buffer.from('again'), { expectedRevision: revision });
      expect(next).toBeGreaterThan(revision);
      expect(await rejection(other.put('app', 'kept', Buffer.from('stale'), { expectedRevision: revision }))).toBeInstanceOf(RevisionMismatchError);
      expect(await other.put('app', 'gone', Buffer.from('back'), { expectedRevision: 0 })).toBeGreaterThan(next);
    });

    it('counts exactly with two writers incrementing by compare-and-set', async () => {
      const peer = await fixture.peer();
      const perWriter = 25;
      let conflicts = 0;
      const increment = async (writer: AppStore): Promise<void> => {
        for (let done = 0; done < perWriter; ) {
          const current = await writer.get('app', 'counter');
          const count = current === undefined ? 0 : Number(current.value.toString());
          try {
            await writer.put('app', 'counter', Buffer.from(String(count + 1)), { expectedRevision: current?.revision ?? 0 });
            done++;
          } catch (error) {
            if (!(error instanceof RevisionMismatchError)) throw error;
            conflicts++;
          }
        }
      };
      await Promise.all([increment(store), increment(peer)]);
      expect((await store.get('app', 'counter'))?.value.toString()).toBe(String(2 * perWriter));
      expect((await peer.get('app', 'counter'))?.value.toString()).toBe(String(2 * perWriter));
      console.log(`app store ${name}: ${2 * perWriter} compare-and-set increments by two writers, ${conflicts} conflicts retried`);
    });

    it('refuses calls after close', async () => {
      await store.close();
      await store.close();
      expect(await rejection(store.get('app', 'k'))).toMatchObject({ code: 'storage_error' });
      expect(await rejection(store.put('app', 'k', Buffer.from('x')))).toMatchObject({ code: 'storage_error' });
    });
  });
}
