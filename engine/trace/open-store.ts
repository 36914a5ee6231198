/**
 * Which trace store a node uses: the NATS bucket shared by every node when it has NATS with
 * JetStream, else memory. `--nats` alone (request-reply, presence) does not need JetStream: there
 * the server is asked once, and without JetStream the node keeps its traces in memory (warned).
 */
import { jetstream } from '@nats-io/jetstream';
import { connectNats } from '../nats/connection.js';
import { NatsTraceStore } from './nats-store.js';
import { MemoryTraceStore } from './store.js';
import type { TraceStore } from './types.js';

export interface OpenTraceStoreOptions {
  /** NATS servers; none: memory. */
  servers: string[];
  prefix: string;
  replicas: number;
  /** The engine's storage or queue already needs JetStream: no need to ask. */
  jetstreamRequired: boolean;
  /** Told why the node records its traces in memory although it has NATS. */
  warn?: (message: string) => void;
}

const PROBE_TIMEOUT_MS = 5_000;

export async function openTraceStore(options: OpenTraceStoreOptions): Promise<TraceStore> {
  if (options.servers.length === 0) return new MemoryTraceStore();
  if (!options.jetstreamRequired) {
    const missing = await jetstreamMissing(options.servers);
    if (missing) {
      options.warn?.(`traces are kept in this node's memory (not shared with other nodes): NATS JetStream is not available: ${missing}`);
      return new MemoryTraceStore();
    }
  }
  return NatsTraceStore.open({ servers: options.servers, prefix: options.prefix, replicas: options.replicas });
}

/** Why JetStream cannot be used on these servers, or undefined when it can. */
async function jetstreamMissing(servers: string[]): Promise<string | undefined> {
  const nc = await connectNats(servers, { name: 'cocaine-engine traces probe' });
  try {
    await jetstream(nc, { timeout: PROBE_TIMEOUT_MS }).jetstreamManager(true);
    return undefined;
  } catch (error) {
    return (error as Error)?.message ?? String(error);
  } finally {
    await nc.close().catch(() => undefined);
  }
}
