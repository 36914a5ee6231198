import { describe, expect, it } from 'vitest';
import { OPTION_MAXIMUM, resolveEngineOptions } from '../../engine/config/options.js';
import { MAX_TIMER_MS } from '../../engine/util/timers.js';

describe('engine option durations have a maximum', () => {
  it.each([
    ['drainTimeoutMs', 'COCAINE_DRAIN_TIMEOUT_MS'],
    ['retryBaseDelayMs', 'COCAINE_RETRY_BASE_DELAY_MS'],
    ['ackWaitMs', 'COCAINE_ACK_WAIT_MS'],
  ] as const)('%s: the maximum is accepted, more is refused naming the source and field', (field, variable) => {
    const maximum = OPTION_MAXIMUM[field]!;
    expect(maximum).toBeLessThanOrEqual(MAX_TIMER_MS);
    expect(resolveEngineOptions({ env: { [variable]: String(maximum) } })[field]).toBe(maximum);
    let error: unknown;
    try {
      resolveEngineOptions({ env: { [variable]: '1e10' } });
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({ code: 'invalid_argument', field, message: `environment variable ${variable} must be at most ${maximum} (got "1e10")` });
    expect(() => resolveEngineOptions({ flags: { [field]: maximum + 1 } })).toThrow(`option --`);
  });
});
