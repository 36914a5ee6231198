/**
 * One engine node's tracing: its Tracer over its TraceStore (memory, or the NATS bucket shared by
 * every node), handed to the transports through the facade (`EngineFacade.traces`).
 */
import type { Logger } from 'pino';
import { NotFoundError } from '../errors/index.js';
import { Tracer } from './tracer.js';
import type { TraceTree } from './tree.js';
import type { TraceStore } from './types.js';

export interface EngineTraces {
  readonly tracer: Tracer;
  readonly store: TraceStore;
  /** The trace's tree; NOT_FOUND (`not_found`) when unknown or expired. Invalid ids: `invalid_argument`, field `traceId`. */
  tree(traceId: string): Promise<TraceTree>;
  close(): Promise<void>;
}

/** A step is recorded as running once it has run this long; a shorter one is recorded once, finished. */
export const START_DELAY_MS = 50;

/** A failed record is logged at most this often (the request goes on regardless). */
const WARN_EVERY_MS = 10_000;

export function engineTraces(store: TraceStore, node: string, logger?: Logger): EngineTraces {
  let lastWarning = 0;
  let failures = 0;
  const tracer = new Tracer({
    store,
    node,
    startDelayMs: START_DELAY_MS,
    onError: (error) => {
      failures++;
      const now = Date.now();
      if (now - lastWarning < WARN_EVERY_MS) return;
      lastWarning = now;
      logger?.warn({ err: error.message, code: error.code, failures, store: store.kind }, 'trace span not recorded');
    },
  });
  return {
    tracer,
    store,
    async tree(traceId) {
      const tree = await store.tree(traceId);
      if (!tree) throw new NotFoundError('not_found', `no trace ${traceId}: unknown, or expired (traces are kept 15 minutes by default)`);
      return tree;
    },
    async close() {
      tracer.flushStarts();
      await store.close();
    },
  };
}
