import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../engine/errors/index.js';
import { connectNats } from '../../engine/nats/connection.js';
import { freePort, startNatsServer, stopAllNatsServers } from '../helpers/nats-server.js';

afterAll(stopAllNatsServers);

describe('connectNats', () => {
  it('connects, and reconnects through a server restart', async () => {
    const server = await startNatsServer({ jetstream: false });
    const nc = await connectNats(server.url, { name: 'test' });
    try {
      expect(nc.getServer()).toContain(String(server.port));
      const reconnected = (async () => {
        for await (const status of nc.status()) if (status.type === 'reconnect') return true;
        return false;
      })();
      await server.restart();
      expect(await reconnected).toBe(true);
      const reply = nc.subscribe('ping', { max: 1, callback: (_error, msg) => void msg.respond('pong') });
      const answer = await nc.request('ping', '', { timeout: 5_000 });
      expect(answer.string()).toBe('pong');
      reply.unsubscribe();
    } finally {
      await nc.close();
    }
  });

  it('waits for a server that starts a little after it', async () => {
    const port = await freePort();
    const connecting = connectNats(`nats://127.0.0.1:${port}`, { firstConnectTimeoutMs: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const late = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    try {
      const nc = await connecting;
      expect(nc.getServer()).toBe(`127.0.0.1:${port}`);
      await nc.close();
    } finally {
      late.kill('SIGKILL');
    }
  });

  it('fails with storage_error naming the url when nothing listens', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    const started = Date.now();
    const error = await connectNats(url, { firstConnectTimeoutMs: 600 }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).code).toBe('storage_error');
    expect((error as EngineError).message).toContain(url.replace('nats://', ''));
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});
