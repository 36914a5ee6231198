/**
 * Placement on a single engine node (no NATS): a routing key is accepted and runs here, telling
 * the handler its node; broadcast answers this one node's result; routing keys are checked at the
 * edge; the CLI flags work the same as on a cluster.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteError } from '../../engine/api/status.js';
import { REQUEST_LIMITS } from '../../engine/api/request-fields.js';
import { cli, cliJson, startEngine, stopAllEngines, tempDir, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';
import { writeWhoamiApp } from '../nats/placement-helpers.js';

describe('placement on one engine node', () => {
  let engine: RunningEngine;
  let rpc: Rpc;

  beforeAll(async () => {
    engine = await startEngine({ args: ['--node-id', 'solo'] });
    rpc = connectRpc(engine.address);
    await cliJson(engine, ['app', 'upload', writeWhoamiApp(join(tempDir('placement-single'), 'app'))]);
  }, 60_000);

  afterAll(async () => {
    rpc?.close();
    await stopAllEngines();
  });

  it('runs a routed call here, from Invoke, InvokeStream and Session, with the cocaine-node header', async () => {
    for (const key of ['a', 'b', 'user-42']) expect((await rpc.client.call('whoami@whoami', '', { routingKey: key, timeoutMs: 20_000 })).toString()).toBe('solo');
    const chunks: Buffer[] = [];
    for await (const chunk of rpc.client.invokeStream('whoami@echo', ['a', 'b'], { routingKey: 'k', timeoutMs: 20_000 })) chunks.push(chunk);
    expect(Buffer.concat(chunks).toString()).toBe('solo:ab');
    const session = rpc.client.session();
    try {
      expect(Buffer.concat(await session.call('whoami@echo', 's', { routingKey: 'k', timeoutMs: 20_000 })).toString()).toBe('solo:s');
    } finally {
      session.close();
    }
    // A call without a routing key is not placed: no header, and a client cannot forge one into a routed call.
    expect((await rpc.client.call('whoami@whoami', '', { timeoutMs: 20_000 })).toString()).toBe('no node header');
    expect((await rpc.client.call('whoami@whoami', '', { routingKey: 'k', headers: { 'Cocaine-Node': 'forged' }, timeoutMs: 20_000 })).toString()).toBe('solo');
  }, 60_000);

  it('broadcasts to the one node', async () => {
    const results = await rpc.client.broadcastCall('whoami@echo', 'x', { timeoutMs: 20_000 });
    expect(results.map((r) => ({ node: r.node, data: r.data.toString(), error: r.error }))).toEqual([{ node: 'solo', data: 'solo:x', error: undefined }]);
    const failed = await rpc.client.broadcastCall('whoami@fail', '', { timeoutMs: 20_000 });
    expect(failed).toHaveLength(1);
    expect(failed[0].node).toBe('solo');
    expect((failed[0].error as RemoteError).code).toBe('handler_error');
    // An unknown app is one node's error, labelled, not the stream's status.
    const ghost = await rpc.client.broadcastCall('ghost@x', '', { timeoutMs: 20_000 });
    expect(ghost.map((r) => [r.node, (r.error as RemoteError)?.code])).toEqual([['solo', 'app_not_found']]);
  }, 60_000);

  it('refuses bad routing keys at the edge, naming the field and the limit', async () => {
    const tooLong = 'k'.repeat(REQUEST_LIMITS.routingKeyChars + 1);
    for (const routingKey of [tooLong, 'a\nb']) {
      const error = (await rpc.client.call('whoami@whoami', '', { routingKey }).catch((e: unknown) => e)) as RemoteError;
      expect(error).toBeInstanceOf(RemoteError);
      expect(error.status).toBe(3);
      expect(error.message).toMatch(/^routing_key: /);
    }
    const long = (await rpc.client.call('whoami@whoami', '', { routingKey: tooLong }).catch((e: unknown) => e)) as RemoteError;
    expect(long.message).toContain(String(REQUEST_LIMITS.routingKeyChars));
    // At the limit it is fine.
    expect((await rpc.client.call('whoami@whoami', '', { routingKey: 'k'.repeat(REQUEST_LIMITS.routingKeyChars) })).toString()).toBe('solo');
  }, 30_000);

  it('cocaine-deploy invoke --routing-key and --broadcast', async () => {
    const one = await cli(engine, ['invoke', 'whoami@echo', '--routing-key', 'k', '--data', 'd']);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toBe('solo:d');
    const all = await cli(engine, ['invoke', 'whoami@echo', '--broadcast', '--data', 'd']);
    expect(all.code, all.stderr).toBe(0);
    expect(JSON.parse(all.stdout)).toEqual({ node: 'solo', ok: true, result: 'solo:d' });
    const failed = await cli(engine, ['invoke', 'whoami@fail', '--broadcast', '--data', '']);
    expect(failed.code).not.toBe(0);
    expect(JSON.parse(failed.stdout)).toMatchObject({ node: 'solo', ok: false, code: 'handler_error' });
    expect(failed.stderr).toContain('failed on solo');
    const both = await cli(engine, ['invoke', 'whoami@echo', '--broadcast', '--routing-key', 'k', '--data', '']);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toContain('--broadcast');
  }, 60_000);
});
