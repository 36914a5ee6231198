import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, cliJson, startEngine, tempDir, waitFor, type RunningEngine } from '../helpers/engine.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';

const ACK_WAIT_MS = 1_000;

/**
 * The engine's event runner with an ack wait of 1 s: a queued handler three times longer is not
 * cut short by the lease (it completes in one attempt); the event's own timeout still ends it.
 */
describe.each(['local', 'jetstream'] as const)('queued events slower than the ack wait (%s queue, real engine)', (backend) => {
  let nats: NatsServer | undefined;
  let engine: RunningEngine;
  let rpc: Rpc;

  beforeAll(async () => {
    const args: string[] = [];
    if (backend === 'jetstream') {
      nats = await startNatsServer();
      args.push('--queue', 'jetstream', '--nats', nats.url);
    }
    engine = await startEngine({ args, env: { COCAINE_ACK_WAIT_MS: String(ACK_WAIT_MS), COCAINE_RETRY_BASE_DELAY_MS: '20' } });
    rpc = connectRpc(engine.address);
    const dir = tempDir('lease-profile');
    writeFileSync(join(dir, 'slow.yaml'), 'pool-limit: 2\nconcurrency: 2\n');
    writeFileSync(join(dir, 'short.yaml'), 'pool-limit: 1\nconcurrency: 1\nrequest-timeout: 1.5\n');
    await cliJson(engine, ['profile', 'upload', 'slow', join(dir, 'slow.yaml')]);
    await cliJson(engine, ['profile', 'upload', 'short', join(dir, 'short.yaml')]);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-slow'), '--profile', 'slow']);
  });

  afterAll(async () => {
    rpc?.close();
    await engine?.stop();
    await nats?.stop();
  });

  const settled = (id: string, timeoutMs: number) =>
    waitFor(
      `event ${id} to settle`,
      async () => {
        const status = await rpc.status(id);
        return status.state === 'COMPLETED' || status.state === 'FAILED' ? status : undefined;
      },
      timeoutMs,
      100,
    );

  it('completes a handler three ack waits long in one attempt', async () => {
    const { id } = await rpc.enqueue('node-slow@sleep', String(3 * ACK_WAIT_MS), { maxAttempts: 3 });
    await waitFor('the event to start', async () => (await rpc.status(id)).state === 'PROCESSING', 20_000, 20);
    const status = await settled(id, 30_000);
    expect(status.state).toBe('COMPLETED');
    expect(status.attempts).toBe(1);
    expect(status.lastError).toBe('');
    expect(status.result.toString()).toBe(`slept ${3 * ACK_WAIT_MS}`);
  }, 60_000);

  it('still ends a live handler at the event\'s own timeout (the profile\'s request-timeout)', async () => {
    await cliJson(engine, ['app', 'restart', 'node-slow', '--profile', 'short']);
    const { id } = await rpc.enqueue('node-slow@sleep', String(30 * ACK_WAIT_MS), { maxAttempts: 1 });
    const status = await settled(id, 30_000);
    expect(status.state).toBe('FAILED');
    expect(status.attempts).toBe(1);
    expect(status.lastError).toMatch(/deadline|timed? ?out/i);
  }, 60_000);
});
