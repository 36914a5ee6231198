import { describe, expect, it } from 'vitest';
import { cpuQuota, formatBytes, resolveLimits, weightToShares } from '../../engine/isolate/limits.js';

describe('resolveLimits', () => {
  it('reads memory sizes, cpus, cpu-weight and pids; ignores isolate-specific keys', () => {
    expect(resolveLimits({ memory: '64M', cpus: 0.5, 'cpu-weight': 200, pids: 32, image: 'x', network: 'host' })).toEqual({
      memoryBytes: 64 * 1024 * 1024,
      cpus: 0.5,
      cpuWeight: 200,
      pids: 32,
    });
    expect(resolveLimits({ memory: 100_000_000 })).toEqual({ memoryBytes: 100_000_000 });
    expect(resolveLimits({ memory: '1.5G' })).toEqual({ memoryBytes: 1.5 * 1024 ** 3 });
    expect(resolveLimits({})).toEqual({});
  });

  it.each([
    [{ memory: 'lots' }, 'isolate.args.memory', /"isolate\.args\.memory" must be a byte count.*got "lots"/],
    [{ memory: '1k' }, 'isolate.args.memory', /at least 4M/],
    [{ cpus: 0 }, 'isolate.args.cpus', /"isolate\.args\.cpus" must be a number of cores/],
    [{ cpus: '2' }, 'isolate.args.cpus', /got "2"/],
    [{ 'cpu-weight': 0 }, 'isolate.args.cpu-weight', /from 1 to 10000/],
    [{ 'cpu-weight': 1.5 }, 'isolate.args.cpu-weight', /from 1 to 10000/],
    [{ pids: -1 }, 'isolate.args.pids', /integer >= 1 \(got -1\)/],
  ])('refuses %j naming the field', (args, field, message) => {
    expect(() => resolveLimits(args)).toThrow(message);
    try {
      resolveLimits(args);
    } catch (error) {
      expect(error).toMatchObject({ code: 'invalid_profile', field });
    }
  });

  it('formats and converts limits for the kernel', () => {
    expect(formatBytes(64 * 1024 * 1024)).toBe('64 MiB');
    expect(formatBytes(1.5 * 1024 ** 3)).toBe('1.5 GiB');
    expect(formatBytes(512)).toBe('512 bytes');
    expect(weightToShares(100)).toBe(1024);
    expect(weightToShares(1)).toBe(10);
    expect(weightToShares(10000)).toBe(102400);
    expect(cpuQuota(0.2)).toEqual({ periodUs: 100_000, quotaUs: 20_000 });
  });
});
