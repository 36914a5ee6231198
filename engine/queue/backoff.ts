import type { QueueOptions } from './types.js';

/** Delay before the retry that follows failed attempt `attempt` (1-based). */
export function retryDelayMs(attempt: number, options: Pick<QueueOptions, 'retryBaseDelayMs' | 'retryMaxDelayMs'>): number {
  const exponent = Math.max(0, attempt - 1);
  // 2^exponent overflows to Infinity for huge attempts, which Math.min handles.
  return Math.min(options.retryMaxDelayMs, options.retryBaseDelayMs * 2 ** exponent);
}
