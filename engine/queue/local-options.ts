import { InvalidInputError } from '../errors/index.js';
import { DEFAULT_QUEUE_OPTIONS, type QueueOptions } from './types.js';

export interface LocalQueueOptions extends QueueOptions {
  /** COMPLETED and FAILED statuses are kept at least this long, then pruned. */
  retentionMs: number;
  /** How often the pruning of expired statuses runs. */
  pruneIntervalMs: number;
  /** `close()` waits this long for aborted handlers before releasing their events anyway. */
  closeTimeoutMs: number;
}

export const DEFAULT_LOCAL_QUEUE_OPTIONS: Readonly<LocalQueueOptions> = Object.freeze({
  ...DEFAULT_QUEUE_OPTIONS,
  retentionMs: 7 * 24 * 60 * 60 * 1000,
  pruneIntervalMs: 60 * 60 * 1000,
  closeTimeoutMs: 10_000,
});

const FIELDS: Record<keyof LocalQueueOptions, { min: number; integer: boolean }> = {
  defaultMaxAttempts: { min: 1, integer: true },
  retryBaseDelayMs: { min: 0, integer: false },
  retryMaxDelayMs: { min: 0, integer: false },
  maxResultBytes: { min: 0, integer: true },
  ackWaitMs: { min: 1, integer: false },
  retentionMs: { min: 0, integer: false },
  pruneIntervalMs: { min: 1, integer: false },
  closeTimeoutMs: { min: 0, integer: false },
};

/** Defaults filled in and every field checked; errors name the offending field. */
export function resolveLocalQueueOptions(options: Partial<LocalQueueOptions> = {}): LocalQueueOptions {
  const resolved: LocalQueueOptions = { ...DEFAULT_LOCAL_QUEUE_OPTIONS };
  for (const key of Object.keys(FIELDS) as (keyof LocalQueueOptions)[]) {
    const value = options[key];
    if (value === undefined) continue;
    const rule = FIELDS[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < rule.min || (rule.integer && !Number.isInteger(value))) {
      throw new InvalidInputError(
        'invalid_argument',
        `queue option ${key} is ${JSON.stringify(value)}: expected a finite ${rule.integer ? 'integer' : 'number'} >= ${rule.min}`,
        { field: `queue.${key}` },
      );
    }
    resolved[key] = value;
  }
  if (resolved.retryMaxDelayMs < resolved.retryBaseDelayMs) {
    throw new InvalidInputError(
      'invalid_argument',
      `queue option retryMaxDelayMs (${resolved.retryMaxDelayMs}) is below retryBaseDelayMs (${resolved.retryBaseDelayMs})`,
      { field: 'queue.retryMaxDelayMs' },
    );
  }
  return resolved;
}
