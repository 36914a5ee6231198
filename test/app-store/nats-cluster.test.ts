/**
 * NatsAppStore on a three-server JetStream cluster with an R3 bucket: two engines connected to
 * different servers see each other's writes at once, and a stale compare-and-set is refused.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RevisionMismatchError } from '../../engine/app-store/errors.js';
import { NatsAppStore } from '../../engine/app-store/nats.js';
import { startNatsCluster, stopAllNatsServers, type NatsCluster } from '../helpers/nats-server.js';

describe('NatsAppStore on a 3-server cluster, replicas 3', () => {
  let cluster: NatsCluster;

  beforeAll(async () => {
    cluster = await startNatsCluster(3);
  });

  afterAll(stopAllNatsServers);

  it('shows every write to an engine on another server at once, and refuses a stale compare-and-set from it', async () => {
    const prefix = `c${randomBytes(4).toString('hex')}`;
    const first = await NatsAppStore.open({ servers: cluster.urls[0]!, prefix, replicas: 3 });
    const second = await NatsAppStore.open({ servers: cluster.urls[2]!, prefix, replicas: 3 });
    try {
      for (let i = 0; i < 10; i++) {
        const revision = await first.put('app', `k${i}`, Buffer.from(`v${i}`));
        // Read right after the write, through the other server: never an older value.
        expect(await second.get('app', `k${i}`)).toEqual({ value: Buffer.from(`v${i}`), revision });
      }
      expect((await second.list('app', 'k', { limit: 20 })).keys).toEqual(Array.from({ length: 10 }, (_, i) => `k${i}`).sort());
      expect(await second.delete('app', 'k0')).toBe(true);
      expect(await first.get('app', 'k0')).toBeUndefined();
      expect((await first.list('app')).keys).not.toContain('k0');

      // Compare-and-set across servers: the second engine's write against a revision the first one
      // has replaced is refused. (Writes racing within milliseconds are only serialised by
      // nats-server releases after 2.9.20: nats-server#4320; see docs/app-store.md.)
      const base = await first.put('app', 'counter', Buffer.from('1'), { expectedRevision: 0 });
      await expect(second.put('app', 'counter', Buffer.from('1'), { expectedRevision: 0 })).rejects.toBeInstanceOf(RevisionMismatchError);
      const next = await first.put('app', 'counter', Buffer.from('2'), { expectedRevision: base });
      await expect(second.put('app', 'counter', Buffer.from('2'), { expectedRevision: base })).rejects.toMatchObject({ reason: 'revision_mismatch', actualRevision: next });
      expect(await second.put('app', 'counter', Buffer.from('3'), { expectedRevision: next })).toBeGreaterThan(next);
      expect((await first.get('app', 'counter'))?.value.toString()).toBe('3');
    } finally {
      await first.close();
      await second.close();
    }
  });
});
