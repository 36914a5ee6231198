/**
 * The NATS backends on a three-server JetStream cluster with R3 buckets and streams: storage keeps
 * its data through a server restart; 2,000 events consumed by three subscriber processes survive
 * one of them being SIGKILLed and one NATS server being stopped mid-run (every event completes at
 * least once; duplicates are counted and printed); a poisoned event ends in the dead-letter stream.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JetStreamQueue } from '../../engine/queue/jetstream.js';
import type { EventStatus } from '../../engine/queue/types.js';
import { NatsStorage } from '../../engine/storage/nats.js';
import { makeProfile, makeRecord, putAppBytes, readArchiveBytes } from '../contracts/storage.contract.js';
import { startNatsCluster, type NatsCluster } from '../helpers/nats-server.js';
import { compileModule } from '../helpers/compile-module.js';

const EVENTS = 2_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Retries `read` through a failover (requests fail for a few seconds while leaders move). */
async function eventually<T>(what: string, read: () => Promise<T>, accept: (value: T) => boolean = () => true, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await read();
      if (accept(value)) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await sleep(100);
  }
}

interface Node {
  child: ChildProcess;
  done: string[];
  failed: string[];
  ready: Promise<void>;
  output: string[];
}

describe('NATS backends on a three-server cluster (R3)', () => {
  let cluster: NatsCluster;
  let modulePath: string;
  let outDir: string;
  const nodes: Node[] = [];

  beforeAll(async () => {
    const [started, compiled] = await Promise.all([startNatsCluster(3), compileModule('engine/queue/jetstream.ts')]);
    cluster = started;
    ({ modulePath, outDir } = compiled);
  });

  afterAll(async () => {
    for (const node of nodes) node.child.kill('SIGKILL');
    await cluster?.stop();
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  it('storage keeps its data through a NATS server restart, and the restarted server catches up', async () => {
    const prefix = `s${randomBytes(4).toString('hex')}`;
    const storage = await NatsStorage.open({ servers: cluster.urls, prefix, replicas: 3 });
    try {
      const archive = randomBytes(200_000);
      await putAppBytes(storage, makeRecord('durable', archive), archive);
      await storage.putProfile('p', makeProfile(3));
      await storage.addToRunlist('durable', 'p');

      await cluster.servers[0].stop();
      // Two of three servers keep the quorum: reads and writes go on.
      expect((await eventually('the archive with a server down', () => readArchiveBytes(storage, 'durable'))).equals(archive)).toBe(true);
      await eventually('a write with a server down', () => storage.addToRunlist('later', 'p'));
      await cluster.servers[0].start();

      // A client of the restarted server alone sees everything, including what it missed.
      const only = await NatsStorage.open({ servers: cluster.servers[0].url, prefix, replicas: 3 });
      try {
        const runlist = await eventually('the runlist on the restarted server', () => only.getRunlist(), (r) => Object.keys(r).length === 2);
        expect(runlist).toEqual({ durable: 'p', later: 'p' });
        expect((await readArchiveBytes(only, 'durable')).equals(archive)).toBe(true);
        expect((await only.getProfile('p'))?.['pool-limit']).toBe(3);
      } finally {
        await only.close();
      }
    } finally {
      await storage.close();
    }
  });

  it('2,000 events through three subscriber processes, one SIGKILLed and one NATS server stopped: none lost', async () => {
    const prefix = `q${randomBytes(4).toString('hex')}`;
    const app = 'load';
    const queue = await JetStreamQueue.open({ servers: cluster.urls, prefix, replicas: 3 });
    try {
      const ids: string[] = [];
      let next = 0;
      const started = Date.now();
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (next < EVENTS) {
            const i = next++;
            const { id } = await queue.enqueue({ app, event: 'work', data: Buffer.from(`payload-${i}`), headers: {}, maxAttempts: 5 });
            ids.push(id);
          }
        }),
      );
      const enqueueMs = Date.now() - started;
      const poison = await queue.enqueue({ app, event: 'poison', data: Buffer.from('bad'), headers: {}, maxAttempts: 3 });
      expect(new Set(ids).size).toBe(EVENTS);

      // Handlers take 10 ms, 8 at a time per node: no node drains the queue before the others start.
      for (let i = 0; i < 3; i++) nodes.push(spawnNode([modulePath, cluster.urls.join(','), prefix, app, '3', '8', '10']));
      await Promise.all(nodes.map((node) => node.ready));
      for (const node of nodes) node.child.stdin?.write('start\n');
      const consumeStarted = Date.now();
      const unique = () => new Set(nodes.flatMap((node) => node.done)).size;

      // Every node takes part (the one killed next holds events in flight) before the failures.
      await eventually(
        'a third of the events done, by every node',
        async () =>
          nodes.map((node, i) => {
            if (node.child.exitCode !== null) throw new Error(`node ${i} exited: ${node.output.join('\n')}`);
            return node.done.length;
          }),
        (counts) => counts.every((count) => count > 0) && unique() >= EVENTS / 3,
        30_000,
      );
      nodes[0].child.kill('SIGKILL');
      await cluster.servers[1].stop();
      const atKill = unique();

      await eventually('every event done', async () => unique(), (n) => n >= EVENTS, 45_000);
      // A node killed between its handler and the status write leaves PROCESSING behind: the event
      // comes back after the ack wait (3 s) and completes on another node (a counted duplicate).
      let pending = ids;
      await eventually(
        'every event COMPLETED',
        async () => (pending = (await statusesOf(queue, pending)).filter((status) => status?.state !== 'COMPLETED').map((status) => status!.id)),
        (left) => left.length === 0,
        20_000,
      );
      const consumeMs = Date.now() - consumeStarted;
      await cluster.servers[1].start();

      const doneLines = nodes.reduce((sum, node) => sum + node.done.length, 0);
      const seen = new Set(nodes.flatMap((node) => node.done));
      expect(ids.filter((id) => !seen.has(id))).toEqual([]);
      console.log(
        `cluster run: enqueued ${EVENTS} (R3) in ${enqueueMs} ms; all COMPLETED ${consumeMs} ms after the nodes started; ${atKill} done when node 0 ` +
          `was SIGKILLed and NATS server 1 stopped; per node ${nodes.map((node) => node.done.length).join('/')}; duplicates ${doneLines - EVENTS}`,
      );
      const statuses = await statusesOf(queue, ids.slice(0, 10));
      expect(statuses[0]?.result?.toString()).toMatch(/^payload-/);

      const failedStatus = await eventually('the poisoned event FAILED', () => queue.status(poison.id), (s) => s?.state === 'FAILED');
      expect(failedStatus?.attempts).toBe(3);
      expect(failedStatus?.lastError).toBe('poisoned');
      const dead = await eventually('the dead letter', () => queue.deadLetters(app), (list) => list.length === 1);
      expect(dead[0].id).toBe(poison.id);
      expect(nodes.reduce((sum, node) => sum + node.failed.filter((line) => line.startsWith(poison.id)).length, 0)).toBeGreaterThanOrEqual(3);
      expect(await eventually('an empty queue', () => queue.depth(app), (depth) => depth === 0)).toBe(0);
    } finally {
      for (const node of nodes.slice(1)) node.child.stdin?.write('stop\n');
      await queue.close();
    }
  });
});

function spawnNode(args: string[]): Node {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'cluster-node.mjs'), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const node: Node = { child, done: [], failed: [], output: [], ready: Promise.resolve() };
  node.ready = new Promise((resolve, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`subscriber node exited (${code ?? signal}) before ready:\n${node.output.join('\n')}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line === 'ready') resolve();
      else if (line.startsWith('done ')) node.done.push(line.slice(5));
      else if (line.startsWith('fail ')) node.failed.push(line.slice(5));
    });
  });
  node.ready.catch(() => undefined);
  createInterface({ input: child.stderr! }).on('line', (line) => node.output.push(line));
  return node;
}

async function statusesOf(queue: JetStreamQueue, ids: string[]): Promise<Array<EventStatus | undefined>> {
  const statuses: Array<EventStatus | undefined> = [];
  for (let i = 0; i < ids.length; i += 100) {
    statuses.push(...(await Promise.all(ids.slice(i, i + 100).map((id) => eventually(`status of ${id}`, () => queue.status(id))))));
  }
  return statuses;
}
