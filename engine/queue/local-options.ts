import { QUEUE_OPTION_RULES, resolveOptions, type OptionRule } from './options.js';
import { DEFAULT_QUEUE_OPTIONS, type QueueOptions } from './types.js';

export interface LocalQueueOptions extends QueueOptions {
  /** COMPLETED and FAILED statuses are kept at least this long, then pruned (at most 365 days). */
  retentionMs: number;
  /** How often the pruning of expired statuses runs (1 ms to 7 days). */
  pruneIntervalMs: number;
  /** `close()` waits this long for aborted handlers before releasing their events anyway (at most 1 h). */
  closeTimeoutMs: number;
}

export const DEFAULT_LOCAL_QUEUE_OPTIONS: Readonly<LocalQueueOptions> = Object.freeze({
  ...DEFAULT_QUEUE_OPTIONS,
  retentionMs: 7 * 24 * 60 * 60 * 1000,
  pruneIntervalMs: 60 * 60 * 1000,
  closeTimeoutMs: 10_000,
});

const DAY_MS = 24 * 60 * 60 * 1000;

const RULES: Readonly<Record<keyof LocalQueueOptions, OptionRule>> = Object.freeze({
  ...QUEUE_OPTION_RULES,
  retentionMs: { min: 0, max: 365 * DAY_MS, integer: false, maxText: '365 days' },
  pruneIntervalMs: { min: 1, max: 7 * DAY_MS, integer: false, maxText: '7 days' },
  closeTimeoutMs: { min: 0, max: 60 * 60 * 1000, integer: false, maxText: '1 h' },
});

/** Defaults filled in and every field checked; errors name the offending field. */
export function resolveLocalQueueOptions(options: Partial<LocalQueueOptions> = {}): LocalQueueOptions {
  return resolveOptions<LocalQueueOptions>(DEFAULT_LOCAL_QUEUE_OPTIONS, RULES, options);
}
