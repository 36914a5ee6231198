import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS, setLongTimeout } from '../../engine/util/timers.js';

describe('setLongTimeout', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('does not fire early for delays beyond the 2^31 - 1 ms setTimeout limit', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    const thirtyDays = 30 * 24 * 3600 * 1000;
    setLongTimeout(fired, thirtyDays);
    vi.advanceTimersByTime(1_000);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(thirtyDays - MAX_TIMER_MS - 1_001);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(2);
    expect(fired).toHaveBeenCalledTimes(1);
  });

  it('fires short delays once and can be cleared', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    setLongTimeout(fired, 50);
    const cleared = vi.fn();
    setLongTimeout(cleared, 50).clear();
    vi.advanceTimersByTime(60);
    expect(fired).toHaveBeenCalledTimes(1);
    expect(cleared).not.toHaveBeenCalled();
  });

  it('never fires for an infinite delay', () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    setLongTimeout(fired, Infinity);
    vi.advanceTimersByTime(MAX_TIMER_MS * 3);
    expect(fired).not.toHaveBeenCalled();
  });
});
