/**
 * NatsStorage on a three-server JetStream cluster with R3 buckets: losing one server loses no data
 * and does not stop reads or writes; the server rejoins and catches up.
 */
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsStorage } from '../../engine/storage/nats.js';
import { makeProfile, makeRecord, putAppBytes, readArchiveBytes } from '../contracts/storage.contract.js';
import { startNatsCluster, stopAllNatsServers, type NatsCluster } from '../helpers/nats-server.js';

describe('NatsStorage on a 3-server cluster, replicas 3', () => {
  let cluster: NatsCluster;

  beforeAll(async () => {
    cluster = await startNatsCluster(3);
  });

  afterAll(stopAllNatsServers);

  it('keeps reading and writing with one server down, and the server catches up when back', async () => {
    const prefix = `c${randomBytes(4).toString('hex')}`;
    const storage = await NatsStorage.open({ servers: cluster.urls, prefix, replicas: 3 });
    const archive = randomBytes(500_000);
    const record = makeRecord('clustered', archive);
    try {
      await putAppBytes(storage, record, archive);
      await storage.putProfile('p', makeProfile(4));
      await storage.addToRunlist('clustered', 'p');

      const changes = storage.watch()[Symbol.asyncIterator]();
      // The worst server to lose: the leader of the records stream (writes wait for a new election).
      const down = cluster.servers[await leaderIndex(cluster, `KV_${prefix}-app-records`)];
      let started = Date.now();
      await down.stop();
      expect(await storage.getApp('clustered')).toEqual(record);
      expect((await readArchiveBytes(storage, 'clustered')).equals(archive)).toBe(true);
      const secondArchive = randomBytes(200_000);
      const second = makeRecord('second', secondArchive);
      await putAppBytes(storage, second, secondArchive);
      await storage.addToRunlist('second', 'p');
      const degradedMs = Date.now() - started;
      expect(await storage.getRunlist()).toEqual({ clustered: 'p', second: 'p' });
      // The watch opened before the loss announces the write made after it, whichever server its
      // consumer sat on (a silent watch is restarted from its last revision).
      const announced = await Promise.race([
        (async () => {
          for (let next = await changes.next(); !next.done; next = await changes.next()) {
            if (next.value.kind === 'app' && next.value.name === 'second') return next.value;
          }
          return undefined;
        })(),
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 20_000).unref()),
      ]);
      expect(announced).toEqual({ kind: 'app', name: 'second', removed: false });
      await changes.return?.();

      started = Date.now();
      await down.start();
      // The restarted server alone (the only one a new node connects to) serves what was written while it was down.
      const rejoined = await NatsStorage.open({ servers: down.url, prefix, replicas: 3 });
      try {
        expect((await readArchiveBytes(rejoined, 'second')).equals(secondArchive)).toBe(true);
        expect(await rejoined.getRunlist()).toEqual({ clustered: 'p', second: 'p' });
      } finally {
        await rejoined.close();
      }
      console.log(`cluster: reads+writes with one server down ${degradedMs} ms; rejoin and catch-up ${Date.now() - started} ms`);
    } finally {
      await storage.close();
    }
  });
});

async function leaderIndex(cluster: NatsCluster, stream: string): Promise<number> {
  const nc = await connect({ servers: cluster.urls });
  try {
    const leader = (await (await jetstreamManager(nc)).streams.info(stream)).cluster?.leader ?? '';
    const index = Number(/^n(\d+)$/.exec(leader)?.[1]);
    if (!Number.isInteger(index)) throw new Error(`stream ${stream} has no leader named n<i>: ${JSON.stringify(leader)}`);
    return index;
  } finally {
    await nc.close();
  }
}

