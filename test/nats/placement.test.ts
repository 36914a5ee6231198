/**
 * Placement across three engine nodes on one nats-server (nats storage, so one upload serves
 * every node): routing keys map by rendezvous hashing over the live nodes, consistently from any
 * entry node; a SIGKILLed node's keys move once its presence expires and nobody else's do;
 * broadcast answers every node's result labelled by node id, from gRPC and from the CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { nodeForKey } from '../../engine/nats/rendezvous.js';
import { RemoteError } from '../../engine/api/status.js';
import { cli, cliJson, startEngine, stopAllEngines, tempDir, waitFor, type RunningEngine } from '../helpers/engine.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';
import { writeWhoamiApp } from './placement-helpers.js';

const NODES = ['node-a', 'node-b', 'node-c'];
const KEYS = Array.from({ length: 100 }, (_, i) => `user-${i}`);

describe('placement across three engine nodes', () => {
  let nats: NatsServer;
  const engines: RunningEngine[] = [];
  const rpcs: Rpc[] = [];

  const routed = async (entry: number, key: string): Promise<string> => {
    return (await rpcs[entry].client.call('whoami@whoami', '', { routingKey: key, timeoutMs: 20_000 })).toString();
  };
  const broadcastNodes = async (entry: number) => (await rpcs[entry].client.broadcastCall('whoami@whoami', '', { timeoutMs: 20_000 })).map((r) => r.node).sort();

  beforeAll(async () => {
    nats = await startNatsServer();
    for (const node of NODES) engines.push(await startEngine({ args: ['--storage', nats.url, '--nats', nats.url, '--node-id', node] }));
    for (const engine of engines) rpcs.push(connectRpc(engine.address));
    await cliJson(engines[0], ['app', 'upload', writeWhoamiApp(join(tempDir('placement'), 'app'))]);
    for (let i = 0; i < engines.length; i++) {
      await waitFor(`${NODES[i]} to see all three nodes and the app`, async () => {
        const results = await rpcs[i].client.broadcastCall('whoami@whoami', '', { timeoutMs: 20_000 }).catch(() => []);
        return results.length === 3 && results.every((r) => !r.error);
      }, 60_000, 250);
    }
  }, 180_000);

  afterAll(async () => {
    for (const rpc of rpcs) rpc.close();
    await stopAllEngines();
    await nats?.stop();
  });

  it('maps each of 100 keys to exactly one node, the same from every entry node, and uses all three', async () => {
    const owners = new Map<string, string>();
    for (const [i, key] of KEYS.entries()) {
      const seen = new Set<string>();
      for (let entry = 0; entry < 3; entry++) seen.add(await routed((i + entry) % 3, key));
      expect([...seen], `key ${key}`).toHaveLength(1);
      owners.set(key, [...seen][0]);
      expect(owners.get(key)).toBe(nodeForKey(key, NODES));
    }
    const perNode = NODES.map((node) => [...owners.values()].filter((owner) => owner === node).length);
    console.log(`routing keys per node: ${NODES.map((node, i) => `${node}=${perNode[i]}`).join(' ')}`);
    for (const count of perNode) expect(count).toBeGreaterThan(10);
  }, 120_000);

  it('routes InvokeStream and Session calls by key too', async () => {
    const key = KEYS[7];
    const stream = rpcs[0].client.invokeStream('whoami@echo', ['he', 'llo'], { routingKey: key, timeoutMs: 20_000 });
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(Buffer.concat(chunks).toString()).toBe(`${nodeForKey(key, NODES)}:hello`);
    const session = rpcs[1].client.session();
    try {
      const answers = await Promise.all(KEYS.slice(0, 30).map((k) => session.call('whoami@echo', 's', { routingKey: k, timeoutMs: 20_000 })));
      answers.forEach((answer, i) => expect(Buffer.concat(answer).toString()).toBe(`${nodeForKey(KEYS[i], NODES)}:s`));
    } finally {
      session.close();
    }
  }, 30_000);

  it('refuses a routed body larger than one NATS message, naming the limit', async () => {
    const key = KEYS.find((k) => nodeForKey(k, NODES) !== NODES[0]) as string;
    const error = (await rpcs[0].client.call('whoami@echo', Buffer.alloc(1100 * 1024), { routingKey: key, timeoutMs: 20_000 }).catch((e: unknown) => e)) as RemoteError;
    expect(error).toBeInstanceOf(RemoteError);
    expect(error.code).toBe('message_too_large');
    expect(error.message).toContain('one NATS message');
  }, 30_000);

  it('keeps the call-depth header (handler `call`) on a call routed to another node', async () => {
    const key = KEYS.find((k) => nodeForKey(k, NODES) !== NODES[0]) as string;
    const answer = await rpcs[0].client.call('whoami@depth', '', { routingKey: key, headers: { 'cocaine-call-depth': '3' }, timeoutMs: 20_000 });
    expect(answer.toString()).toBe(`${nodeForKey(key, NODES)}:3`);
  }, 30_000);

  it('broadcasts to every node: three results labelled with three node ids; errors are labelled too', async () => {
    const results = await rpcs[1].client.broadcastCall('whoami@echo', 'x', { timeoutMs: 20_000 });
    expect(results.map((r) => r.node).sort()).toEqual(NODES);
    for (const result of results) expect(result.data.toString()).toBe(`${result.node}:x`);
    const failed = await rpcs[0].client.broadcastCall('whoami@fail', '', { timeoutMs: 20_000 });
    expect(failed.map((r) => r.node).sort()).toEqual(NODES);
    for (const result of failed) expect(result.error?.message).toContain(`failed on ${result.node}`);
  }, 60_000);

  it("a handler's call takes a routing key or broadcasts, like a client's", async () => {
    for (const key of KEYS.slice(0, 20)) {
      const viaHandler = (await rpcs[1].client.call('whoami@route', key, { timeoutMs: 20_000 })).toString();
      expect(viaHandler, key).toBe(await routed(0, key));
    }
    const results = JSON.parse((await rpcs[2].client.call('whoami@everyone', '', { timeoutMs: 20_000 })).toString()) as Array<{ node: string; ok: boolean; data: string }>;
    expect(results.map((result) => result.node).sort()).toEqual(NODES);
    for (const result of results) expect([result.ok, Buffer.from(result.data, 'base64').toString()]).toEqual([true, result.node]);
  }, 120_000);

  it('cocaine-deploy invoke --routing-key and --broadcast', async () => {
    const key = KEYS[42];
    const one = await cli(engines[2], ['invoke', 'whoami@whoami', '--routing-key', key, '--data', '']);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toBe(nodeForKey(key, NODES));
    const all = await cli(engines[0], ['invoke', 'whoami@echo', '--broadcast', '--data', 'b']);
    expect(all.code, all.stderr).toBe(0);
    const lines = all.stdout.trim().split('\n').map((line) => JSON.parse(line) as { node: string; ok: boolean; result: string });
    expect(lines.map((line) => line.node).sort()).toEqual(NODES);
    for (const line of lines) expect(line).toEqual({ node: line.node, ok: true, result: `${line.node}:b` });
  }, 60_000);

  it('after a node is SIGKILLed: its keys fail UNAVAILABLE naming it until its presence expires, then move; no other key moves', async () => {
    const before = new Map(KEYS.map((key) => [key, nodeForKey(key, NODES) as string]));
    const dead = NODES[2];
    const deadKey = KEYS.find((key) => before.get(key) === dead) as string;
    // A routed call running on the node when it dies fails once the node leaves the membership.
    const running = rpcs[0].client.call('whoami@slow', '', { routingKey: deadKey, timeoutMs: 100_000 }).then(() => undefined, (error: unknown) => error as RemoteError);
    await waitFor(`the slow call to run on ${dead}`, async () => {
      const info = await cliJson<{ node: { apps: Array<{ name: string; busy: number }> } }>(engines[2], ['info']);
      return info.node.apps.some((app) => app.name === 'whoami' && app.busy > 0);
    }, 30_000, 200);
    await engines[2].kill();
    // Until its presence expires the dead node is still a member: broadcast labels its failure.
    const during = await rpcs[1].client.broadcastCall('whoami@whoami', '', { timeoutMs: 20_000 });
    expect(during.map((r) => r.node).sort()).toEqual(NODES);
    const lost = during.find((r) => r.node === dead);
    expect((lost?.error as RemoteError)?.status).toBe(14);
    expect(lost?.error?.message).toContain(dead);
    const refused = (await rpcs[0].client.call('whoami@whoami', '', { routingKey: deadKey, timeoutMs: 20_000 }).catch((error: unknown) => error)) as RemoteError;
    expect(refused).toBeInstanceOf(RemoteError);
    expect(refused.status).toBe(14);
    expect(refused.message).toContain(dead);

    const survivors = NODES.slice(0, 2);
    for (let entry = 0; entry < 2; entry++) {
      await waitFor(`${NODES[entry]} to drop ${dead} from membership`, async () => {
        const nodes = await broadcastNodes(entry);
        return nodes.length === 2 && nodes.every((node) => survivors.includes(node));
      }, 30_000, 500);
    }
    const lostCall = await running;
    expect(lostCall).toBeInstanceOf(RemoteError);
    expect(lostCall?.status).toBe(14);
    expect(lostCall?.message).toContain(`${dead} left the cluster`);
    let moved = 0;
    for (const [i, key] of KEYS.entries()) {
      const owner = await routed(i % 2, key);
      expect(await routed((i + 1) % 2, key)).toBe(owner);
      if (before.get(key) === dead) {
        moved++;
        expect(survivors).toContain(owner);
        expect(owner).toBe(nodeForKey(key, survivors));
      } else expect(owner, `key ${key} must stay on ${before.get(key)}`).toBe(before.get(key));
    }
    console.log(`after ${dead} left: ${moved} of ${KEYS.length} keys moved, ${KEYS.length - moved} stayed`);
    expect(moved).toBeGreaterThan(0);
  }, 120_000);
});
