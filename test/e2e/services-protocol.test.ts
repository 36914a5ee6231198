/** A worker that handshook with protocol 1 and sends SERVICE or LOG frames breaks the protocol. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, cliJson, startEngine, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';

describe('protocol version 1 workers get no services', () => {
  let engine: RunningEngine;
  let rpc: Rpc;

  beforeAll(async () => {
    engine = await startEngine({ args: ['--plugins-dir', join(ROOT, 'test/fixtures/services-plugins')] });
    rpc = connectRpc(engine.address);
    await cliJson(engine, ['app', 'upload', join(ROOT, 'test/fixtures/services-rawv1-app')]);
  }, 60_000);

  afterAll(async () => {
    rpc?.close();
    await engine?.stop();
  });

  it('a SERVICE frame from a version-1 worker is a protocol error: the worker is killed, its call fails with the reason', async () => {
    const result = await rpc.call('svc-rawv1@service', '', { timeoutMs: 30_000 });
    expect(result.error?.code).toBe('worker_crashed');
    expect(result.error?.message).toContain('sent a SERVICE frame but handshook with protocol 1 (protocol error)');
  }, 60_000);

  it('so is a LOG frame', async () => {
    const result = await rpc.call('svc-rawv1@log', '', { timeoutMs: 30_000 });
    expect(result.error?.code).toBe('worker_crashed');
    expect(result.error?.message).toContain('sent a LOG frame but handshook with protocol 1 (protocol error)');
  }, 60_000);
});
