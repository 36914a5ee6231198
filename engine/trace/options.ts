import { InvalidInputError } from '../errors/index.js';
import type { MemoryTraceStoreOptions } from './types.js';

export interface ResolvedMemoryTraceStoreOptions {
  ttlMs: number;
  maxSpansPerTrace: number;
  maxTraces: number;
  maxSpans: number;
}

/** 15 minutes, 10,000 traces, 256 spans each, 50,000 spans in all: about 20 MB of heap typically, 65 MB at most (docs/tracing.md). */
export const TRACE_STORE_DEFAULTS = Object.freeze({ ttlMs: 15 * 60_000, maxSpansPerTrace: 256, maxTraces: 10_000, maxSpans: 50_000 });

/** Checks one positive integer option; errors name the field as `trace.<name>`. */
export function positiveInteger(name: string, value: unknown, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidInputError('invalid_argument', `trace option ${name} ${JSON.stringify(value)} is invalid: expected an integer from 1 to ${max}`, { field: `trace.${name}` });
  }
  return value;
}

export function resolveMemoryTraceStoreOptions(options: MemoryTraceStoreOptions = {}): ResolvedMemoryTraceStoreOptions {
  const maxSpans = positiveInteger('maxSpans', options.maxSpans, TRACE_STORE_DEFAULTS.maxSpans);
  const resolved = {
    ttlMs: positiveInteger('ttlMs', options.ttlMs, TRACE_STORE_DEFAULTS.ttlMs),
    maxSpansPerTrace: positiveInteger('maxSpansPerTrace', options.maxSpansPerTrace, Math.min(TRACE_STORE_DEFAULTS.maxSpansPerTrace, maxSpans)),
    maxTraces: positiveInteger('maxTraces', options.maxTraces, TRACE_STORE_DEFAULTS.maxTraces),
    maxSpans,
  };
  if (resolved.maxSpansPerTrace > maxSpans) {
    throw new InvalidInputError('invalid_argument', `trace option maxSpansPerTrace (${resolved.maxSpansPerTrace}) is larger than maxSpans (${maxSpans})`, { field: 'trace.maxSpansPerTrace' });
  }
  return resolved;
}
