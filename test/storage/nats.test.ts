import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsStorage } from '../../engine/storage/nats.js';
import { describeStorageContract, makeProfile, makeRecord } from '../contracts/storage.contract.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';

let server: NatsServer;

beforeAll(async () => {
  server = await startNatsServer();
});

afterAll(async () => {
  await server?.stop();
});

const prefix = () => `t${randomBytes(4).toString('hex')}`;

describeStorageContract('nats', async () => {
  const storage = await NatsStorage.open({ servers: server.url, prefix: prefix() });
  return { storage, cleanup: () => storage.close() };
});

describe('NatsStorage across nodes', () => {
  it('shows an upload made through one node to another at once, and announces it', async () => {
    const shared = prefix();
    const first = await NatsStorage.open({ servers: server.url, prefix: shared });
    const second = await NatsStorage.open({ servers: server.url, prefix: shared });
    try {
      const changes = second.watch()[Symbol.asyncIterator]();
      const archive = randomBytes(300_000);
      const record = makeRecord('shared-app', archive);
      await first.putApp(record, archive);
      expect((await changes.next()).value).toEqual({ kind: 'app', name: 'shared-app', removed: false });
      expect(await second.getApp('shared-app')).toEqual(record);
      expect((await second.readArchive('shared-app')).equals(archive)).toBe(true);
      await changes.return?.();
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('keeps its data across a NATS server restart', async () => {
    const shared = prefix();
    const storage = await NatsStorage.open({ servers: server.url, prefix: shared });
    const archive = Buffer.from('survives');
    await storage.putApp(makeRecord('durable', archive), archive);
    await storage.putProfile('p', makeProfile(3));
    await storage.addToRunlist('durable', 'p');
    await storage.close();
    await server.restart();
    const reopened = await NatsStorage.open({ servers: server.url, prefix: shared });
    try {
      expect((await reopened.readArchive('durable')).toString()).toBe('survives');
      expect((await reopened.getProfile('p'))?.['pool-limit']).toBe(3);
      expect(await reopened.getRunlist()).toEqual({ durable: 'p' });
    } finally {
      await reopened.close();
    }
  });
});
