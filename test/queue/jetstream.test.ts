import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { JetStreamQueue } from '../../engine/queue/jetstream.js';
import type { Queue, QueueOptions } from '../../engine/queue/types.js';
import { QUEUE_CONTRACT_OPTIONS, describeQueueContract } from '../contracts/queue.contract.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';

let server: NatsServer;

beforeAll(async () => {
  server = await startNatsServer();
});

afterAll(async () => {
  await server?.stop();
});

describeQueueContract('jetstream', async () => {
  const prefix = `q${randomBytes(4).toString('hex')}`;
  const open = (overrides: Partial<QueueOptions> = {}) => JetStreamQueue.open({ servers: server.url, prefix, ...QUEUE_CONTRACT_OPTIONS, ...overrides });
  let queue: Queue = await open();
  return {
    queue,
    async reopen(overrides = {}) {
      await queue.close();
      queue = await open(overrides);
      return queue;
    },
    async cleanup() {
      await queue.close();
    },
  };
});
