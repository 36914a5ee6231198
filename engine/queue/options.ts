import { InvalidInputError } from '../errors/index.js';
import { DEFAULT_QUEUE_OPTIONS, type QueueOptions } from './types.js';

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

/** The accepted range of one numeric queue option. */
export interface OptionRule {
  min: number;
  max: number;
  integer: boolean;
  /** How the maximum reads in an error message. */
  maxText: string;
}

/**
 * Limits of the options every backend shares. Durations are milliseconds:
 * - `ackWaitMs`: 100 ms to 24 h (how long a silent node keeps its events before they go elsewhere);
 * - `retryBaseDelayMs`, `retryMaxDelayMs`: 0 to 7 days;
 * - `defaultMaxAttempts`: 1 to 1,000; `maxResultBytes`: 0 to 64 MiB.
 */
export const QUEUE_OPTION_RULES: Readonly<Record<keyof QueueOptions, OptionRule>> = Object.freeze({
  defaultMaxAttempts: { min: 1, max: 1_000, integer: true, maxText: '1000' },
  retryBaseDelayMs: { min: 0, max: 7 * DAY_MS, integer: false, maxText: '7 days' },
  retryMaxDelayMs: { min: 0, max: 7 * DAY_MS, integer: false, maxText: '7 days' },
  maxResultBytes: { min: 0, max: 64 * 1024 * 1024, integer: true, maxText: '64 MiB' },
  ackWaitMs: { min: 100, max: DAY_MS, integer: false, maxText: '24 h' },
});

/** Copies the given fields of `options` over `defaults`, checking each; errors name the field (`queue.<name>`). */
export function resolveOptions<T extends object>(defaults: Readonly<T>, rules: Readonly<Record<keyof T, OptionRule>>, options: Partial<T>): T {
  const resolved = { ...defaults } as T;
  for (const key of Object.keys(rules) as (keyof T & string)[]) {
    const value = options[key] as unknown;
    if (value === undefined) continue;
    const rule = rules[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < rule.min || value > rule.max || (rule.integer && !Number.isInteger(value))) {
      throw new InvalidInputError(
        'invalid_argument',
        `queue option ${key} is ${JSON.stringify(value)}: expected a finite ${rule.integer ? 'integer' : 'number'} from ${rule.min} to ${rule.max} (${rule.maxText})`,
        { field: `queue.${key}` },
      );
    }
    (resolved as Record<string, unknown>)[key] = value;
  }
  const retry = resolved as Partial<QueueOptions>;
  if (retry.retryMaxDelayMs !== undefined && retry.retryBaseDelayMs !== undefined && retry.retryMaxDelayMs < retry.retryBaseDelayMs) {
    throw new InvalidInputError(
      'invalid_argument',
      `queue option retryMaxDelayMs (${retry.retryMaxDelayMs}) is below retryBaseDelayMs (${retry.retryBaseDelayMs})`,
      { field: 'queue.retryMaxDelayMs' },
    );
  }
  return resolved;
}

/** The shared options with defaults filled in, every field checked (see QUEUE_OPTION_RULES). */
export function resolveQueueOptions(options: Partial<QueueOptions> = {}): QueueOptions {
  return resolveOptions<QueueOptions>(DEFAULT_QUEUE_OPTIONS, QUEUE_OPTION_RULES, options);
}
