/**
 * Timers for durations that may exceed what `setTimeout` holds. Node clamps any delay above
 * 2^31 − 1 ms (about 24.8 days) to 1 ms, so a 30-day timeout would fire at once; these timers
 * wait in steps of at most that size instead.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimer {
  clear(): void;
  /** Lets the process exit while the timer is pending (like `Timeout.unref`). */
  unref(): LongTimer;
}

/** Calls `callback` once after `delayMs` (any finite non-negative duration; Infinity never fires). */
export function setLongTimeout(callback: () => void, delayMs: number): LongTimer {
  const dueAt = Date.now() + (delayMs > 0 ? delayMs : 0);
  let handle: NodeJS.Timeout | undefined;
  let unrefed = false;
  const arm = (): void => {
    const remaining = dueAt - Date.now();
    if (remaining > MAX_TIMER_MS) {
      handle = setTimeout(arm, MAX_TIMER_MS);
    } else {
      handle = setTimeout(callback, Math.max(0, remaining));
    }
    if (unrefed) handle.unref();
  };
  if (dueAt !== Infinity) arm();
  const timer: LongTimer = {
    clear() {
      if (handle) clearTimeout(handle);
      handle = undefined;
    },
    unref() {
      unrefed = true;
      handle?.unref();
      return timer;
    },
  };
  return timer;
}

/** A promise that resolves after `delayMs`, safe for any duration. */
export function sleep(delayMs: number): Promise<void> {
  return new Promise((resolve) => setLongTimeout(resolve, delayMs));
}
