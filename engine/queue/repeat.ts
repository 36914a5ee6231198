import { setLongTimeout, type LongTimer } from '../util/timers.js';

/**
 * Calls `tick` every `periodMs` (any duration: safe past setTimeout's 2^31-1 ms) until cleared.
 * The next period starts when a tick's promise settles, so slow ticks never overlap.
 */
export function repeatEvery(periodMs: number, tick: () => void | Promise<unknown>): LongTimer {
  let current: LongTimer | undefined;
  let stopped = false;
  let unrefed = false;
  const arm = (): void => {
    if (stopped) return;
    current = setLongTimeout(() => {
      let result: void | Promise<unknown>;
      try {
        result = tick();
      } catch {
        result = undefined;
      }
      if (result instanceof Promise) result.then(arm, arm);
      else arm();
    }, periodMs);
    if (unrefed) current.unref();
  };
  arm();
  const timer: LongTimer = {
    clear() {
      stopped = true;
      current?.clear();
    },
    unref() {
      unrefed = true;
      current?.unref();
      return timer;
    },
  };
  return timer;
}
