import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsAppStore } from '../../engine/app-store/nats.js';
import type { AppStore, AppStoreOptions } from '../../engine/app-store/types.js';
import { describeAppStoreContract } from '../contracts/app-store.contract.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../helpers/nats-server.js';

let server: NatsServer;

beforeAll(async () => {
  server = await startNatsServer();
});

afterAll(stopAllNatsServers);

/** Buckets of each test never meet another's. */
const prefix = () => `t${randomBytes(5).toString('hex')}`;

describeAppStoreContract('nats', async (options?: AppStoreOptions) => {
  const shared = prefix();
  const handles: AppStore[] = [await NatsAppStore.open({ servers: server.url, prefix: shared, ...options })];
  const another = async () => {
    handles.push(await NatsAppStore.open({ servers: [server.url], prefix: shared, ...options }));
    return handles.at(-1)!;
  };
  return {
    store: handles[0]!,
    reopen: another,
    peer: another,
    async cleanup() {
      await Promise.all(handles.map((handle) => handle.close()));
    },
  };
});

describe('NatsAppStore specifics', () => {
  it('leaves no message behind a deleted key, and keeps its data across a server restart', async () => {
    const shared = prefix();
    const store = await NatsAppStore.open({ servers: server.url, prefix: shared });
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const subjects = async () => Object.keys((await jsm.streams.info(`KV_${shared}-app-store`, { subjects_filter: '>' })).state.subjects ?? {}).sort();
      const kept = await store.put('app', 'kept', Buffer.from('kept'));
      for (let i = 0; i < 5; i++) {
        await store.put('app', `session/${i}`, Buffer.from('x'));
        await store.delete('app', `session/${i}`);
      }
      expect(await subjects()).toEqual([`$KV.${shared}-app-store.app.kept`]);
      expect((await jsm.streams.info(`KV_${shared}-app-store`)).state.messages).toBe(1);
      await server.restart();
      expect(await store.get('app', 'kept')).toEqual({ value: Buffer.from('kept'), revision: kept });
      const reopened = await NatsAppStore.open({ servers: server.url, prefix: shared });
      expect(await reopened.list('app')).toEqual({ keys: ['kept'] });
      await reopened.close();
    } finally {
      await nc.close();
      await store.close();
    }
  });

  it('refuses a value limit the server cannot carry, and bad options, naming the field', async () => {
    await expect(NatsAppStore.open({ servers: server.url, prefix: prefix(), maxValueBytes: 1024 * 1024 })).rejects.toMatchObject({
      code: 'invalid_argument',
      field: 'app-store.maxValueBytes',
    });
    await expect(NatsAppStore.open({ servers: server.url, prefix: 'bad.prefix' })).rejects.toMatchObject({ field: 'app-store.prefix' });
    await expect(NatsAppStore.open({ servers: server.url, replicas: 0 })).rejects.toMatchObject({ field: 'app-store.replicas' });
  });
});
