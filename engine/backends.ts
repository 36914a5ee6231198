import { join } from 'node:path';
import type { EngineOptions } from './config/options.js';
import type { AppStore } from './app-store/types.js';
import type { Queue } from './queue/types.js';
import type { Storage } from './storage/types.js';
import type { TraceStore } from './trace/types.js';

/** Opens the configured Storage and Queue implementations (loaded only when chosen). */
export async function openBackends(options: EngineOptions, dataDir: string): Promise<{ storage: Storage; queue: Queue }> {
  let storage: Storage;
  if (options.storage === 'fs') {
    const { FsStorage } = await import('./storage/fs.js');
    storage = await FsStorage.open({ dataDir: join(dataDir, 'storage') });
  } else {
    const { NatsStorage } = await import('./storage/nats.js');
    storage = await NatsStorage.open({ servers: natsServers(options.storage), prefix: options.natsPrefix, replicas: options.natsReplicas });
  }
  let queue: Queue;
  const queueOptions = { defaultMaxAttempts: options.maxAttempts, retryBaseDelayMs: options.retryBaseDelayMs, ackWaitMs: options.ackWaitMs };
  try {
    if (options.queue === 'local') {
      const { LocalQueue } = await import('./queue/local.js');
      queue = await LocalQueue.open({ dir: join(dataDir, 'queue'), ...queueOptions });
    } else {
      const { JetStreamQueue } = await import('./queue/jetstream.js');
      queue = await JetStreamQueue.open({ servers: natsServers(options.nats), prefix: options.natsPrefix, replicas: options.natsReplicas, ...queueOptions });
    }
  } catch (error) {
    await storage.close();
    throw error;
  }
  return { storage, queue };
}

/** The trace store: the NATS bucket shared by every node when the engine runs with NATS (JetStream), else memory (docs/tracing.md). */
export async function openTraceStore(options: EngineOptions, warn?: (message: string) => void): Promise<TraceStore> {
  const { openTraceStore: open } = await import('./trace/open-store.js');
  const jetstreamRequired = options.queue === 'jetstream' || options.storage.startsWith('nats://');
  return open({ servers: options.nats ? natsServers(options.nats) : [], prefix: options.natsPrefix, replicas: options.natsReplicas, jetstreamRequired, warn });
}

/** `nats://a:4222,nats://b:4222` → one entry per server. */
export function natsServers(url: string): string[] {
  return url.split(',').map((server) => server.trim()).filter(Boolean);
}

/** The app store of the configured storage: LMDB under the data dir (fs), or NATS KV (nats). */
export async function openAppStore(options: EngineOptions, dataDir: string): Promise<AppStore> {
  if (options.storage === 'fs') {
    const { LmdbAppStore } = await import('./app-store/lmdb.js');
    return LmdbAppStore.open({ dir: join(dataDir, 'app-store') });
  }
  const { NatsAppStore } = await import('./app-store/nats.js');
  return NatsAppStore.open({ servers: natsServers(options.storage), prefix: options.natsPrefix, replicas: options.natsReplicas });
}
