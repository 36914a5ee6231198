import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalQueue } from '../../engine/queue/local.js';
import type { Queue } from '../../engine/queue/types.js';
import { describeQueueContract, QUEUE_CONTRACT_OPTIONS } from '../contracts/queue.contract.js';

describeQueueContract('local (LMDB)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'queue-contract-'));
  let current: Queue = await LocalQueue.open({ dir, ...QUEUE_CONTRACT_OPTIONS });
  return {
    queue: current,
    async reopen(overrides = {}) {
      await current.close();
      current = await LocalQueue.open({ dir, ...QUEUE_CONTRACT_OPTIONS, ...overrides });
      return current;
    },
    async cleanup() {
      await current.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
