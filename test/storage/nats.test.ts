import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../engine/errors/index.js';
import { NatsStorage, resolveNatsStorageOptions } from '../../engine/storage/nats.js';
import type { StorageChange } from '../../engine/storage/types.js';
import { describeStorageContract, makeProfile, makeRecord, putAppBytes, readArchiveBytes } from '../contracts/storage.contract.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../helpers/nats-server.js';

let server: NatsServer;

beforeAll(async () => {
  server = await startNatsServer();
});

afterAll(stopAllNatsServers);

/** Buckets of each test run (and each contract test) never meet another's. */
const prefix = () => `t${randomBytes(5).toString('hex')}`;

async function next(iterator: AsyncIterator<StorageChange>, timeoutMs = 5_000): Promise<StorageChange | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([iterator.next(), new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)))]);
  clearTimeout(timer);
  return result === 'timeout' ? result : result.done ? 'timeout' : result.value;
}

describeStorageContract('nats', async () => {
  const storage = await NatsStorage.open({ servers: server.url, prefix: prefix() });
  return { storage, cleanup: () => storage.close() };
});

describe('NatsStorage across nodes', () => {
  it('shows an upload made through one node to another at once, and announces it', async () => {
    const shared = prefix();
    const first = await NatsStorage.open({ servers: server.url, prefix: shared });
    const second = await NatsStorage.open({ servers: [server.url], prefix: shared });
    try {
      const changes = second.watch()[Symbol.asyncIterator]();
      const archive = randomBytes(300_000);
      const record = makeRecord('shared-app', archive);
      const started = Date.now();
      await putAppBytes(first, record, archive);
      expect(await next(changes)).toEqual({ kind: 'app', name: 'shared-app', removed: false });
      const announcedMs = Date.now() - started;
      expect(await second.getApp('shared-app')).toEqual(record);
      expect((await readArchiveBytes(second, 'shared-app')).equals(archive)).toBe(true);
      await first.addToRunlist('shared-app', 'default');
      expect(await next(changes)).toEqual({ kind: 'runlist' });
      expect(await second.getRunlist()).toEqual({ 'shared-app': 'default' });
      expect(await first.removeApp('shared-app')).toBe(true);
      expect(await next(changes)).toEqual({ kind: 'app', name: 'shared-app', removed: true });
      expect(await second.getApp('shared-app')).toBeUndefined();
      console.log(`nats storage: a 300 kB upload announced on the other node ${announcedMs} ms after put started`);
      await changes.return?.();
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('keeps its data across a NATS server restart, and open watches keep announcing', async () => {
    const shared = prefix();
    const storage = await NatsStorage.open({ servers: server.url, prefix: shared });
    const archive = Buffer.from('survives');
    await putAppBytes(storage, makeRecord('durable', archive), archive);
    await storage.putProfile('p', makeProfile(3));
    await storage.addToRunlist('durable', 'p');
    await storage.addCrashlog({ id: 'w1:2024/odd id', app: 'durable', workerId: 'w1', timestamp: 5, reason: 'exit 1', lines: ['bye'] });
    const changes = storage.watch()[Symbol.asyncIterator]();
    await server.restart();
    // The same (reconnected) instance, and a fresh one, read everything written before.
    const reopened = await NatsStorage.open({ servers: server.url, prefix: shared });
    try {
      for (const node of [storage, reopened]) {
        expect((await readArchiveBytes(node, 'durable')).toString()).toBe('survives');
        expect((await node.getProfile('p'))?.['pool-limit']).toBe(3);
        expect(await node.getRunlist()).toEqual({ durable: 'p' });
        expect((await node.getCrashlog('durable', 'w1:2024/odd id'))?.lines).toEqual(['bye']);
      }
      await reopened.putProfile('after-restart', makeProfile(1));
      expect(await next(changes, 10_000)).toEqual({ kind: 'profile', name: 'after-restart', removed: false });
    } finally {
      await changes.return?.();
      await reopened.close();
      await storage.close();
    }
  });
});

describe('NatsStorage options and lifecycle', () => {
  it('refuses bad options, naming the field', () => {
    const field = (options: Parameters<typeof resolveNatsStorageOptions>[0]) => {
      try {
        resolveNatsStorageOptions(options);
      } catch (error) {
        return (error as { field?: string; code?: string }).field ?? (error as EngineError).code;
      }
      return 'accepted';
    };
    expect(field({ servers: server.url })).toBe('accepted');
    expect(resolveNatsStorageOptions({ servers: ' a:1, b:2 ' })).toEqual({ servers: ['a:1', 'b:2'], prefix: 'cocaine', replicas: 1, crashlogKeep: 50 });
    expect(field({ servers: server.url, prefix: 'a.b' })).toBe('prefix');
    expect(field({ servers: server.url, replicas: 0 })).toBe('replicas');
    expect(field({ servers: server.url, replicas: 1.5 })).toBe('replicas');
    expect(field({ servers: server.url, crashlogKeep: 0 })).toBe('crashlogKeep');
    expect(field({ servers: '' })).toBe('storage_error');
  });

  it('closes idempotently, and fails later calls with storage_error', async () => {
    const storage = await NatsStorage.open({ servers: server.url, prefix: prefix() });
    expect(storage.kind).toBe('nats');
    expect(storage.location).toBe(server.url);
    await storage.close();
    await storage.close();
    const error = await storage.getApp('x').then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).code).toBe('storage_error');
    const watched = await storage.watch()[Symbol.asyncIterator]().next();
    expect(watched.done).toBe(true);
  });
});
