import { InvalidInputError } from '../errors/index.js';
import { parseByteSize } from '../../manifests/byte-size.js';
import { MIN_MEMORY_BYTES } from '../../manifests/validate.js';
import type { ResourceLimits } from './types.js';

/**
 * Resource limits from a profile's `isolate.args` (`memory`, `cpus`, `cpu-weight`, `pids`); other
 * keys belong to the isolate (image, network) and are ignored here. Errors name the field.
 */
export function resolveLimits(args: Record<string, unknown> = {}): ResourceLimits {
  const limits: ResourceLimits = {};
  if (args.memory !== undefined) {
    let bytes: number;
    try {
      bytes = parseByteSize(args.memory as string | number);
    } catch {
      throw invalid('memory', 'a byte count (integer >= 1) or a size such as "64M" or "1G"', args.memory);
    }
    if (bytes < MIN_MEMORY_BYTES) throw invalid('memory', `at least 4M (${MIN_MEMORY_BYTES} bytes)`, args.memory);
    limits.memoryBytes = bytes;
  }
  if (args.cpus !== undefined) {
    const cpus = args.cpus;
    // A quota below 1 ms per 100 ms period is not something the kernel accepts.
    if (typeof cpus !== 'number' || !Number.isFinite(cpus) || cpus < 0.01) throw invalid('cpus', 'a number of cores >= 0.01 such as 0.5 or 2', cpus);
    limits.cpus = cpus;
  }
  if (args['cpu-weight'] !== undefined) {
    const weight = args['cpu-weight'];
    if (!Number.isInteger(weight) || (weight as number) < 1 || (weight as number) > 10000) throw invalid('cpu-weight', 'an integer from 1 to 10000', weight);
    limits.cpuWeight = weight as number;
  }
  if (args.pids !== undefined) {
    const pids = args.pids;
    if (!Number.isInteger(pids) || (pids as number) < 1) throw invalid('pids', 'an integer >= 1', pids);
    limits.pids = pids as number;
  }
  return limits;
}

/** `64 MiB`, `1.5 GiB`, `1000 bytes`: how limits appear in exit reasons. */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= size) {
      const value = bytes / size;
      return `${Number.isInteger(value) ? value : value.toFixed(1)} ${unit}`;
    }
  }
  return `${bytes} bytes`;
}

/** cgroup v1 cpu.shares (2..262144, default 1024) for a v2 weight (1..10000, default 100). */
export function weightToShares(weight: number): number {
  return Math.max(2, Math.min(262144, Math.round((weight * 1024) / 100)));
}

/** CFS period and quota (µs) for a quota in cores. */
export function cpuQuota(cpus: number, periodUs = 100_000): { periodUs: number; quotaUs: number } {
  return { periodUs, quotaUs: Math.max(1000, Math.round(cpus * periodUs)) };
}

function invalid(field: string, expected: string, got: unknown): InvalidInputError {
  return new InvalidInputError('invalid_profile', `field "isolate.args.${field}" must be ${expected} (got ${JSON.stringify(got)})`, { field: `isolate.args.${field}` });
}
