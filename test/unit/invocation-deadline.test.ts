import { describe, expect, it } from 'vitest';
import { NEAR_DEADLINE_MS, PooledInvocation } from '../../engine/pool/invocation.js';

const request = { app: 'app', event: 'event', headers: {}, deadline: 0 };

function outcome(invocation: PooledInvocation): Promise<string> {
  return new Promise((resolve) => invocation.listen({ onChunk: () => undefined, onEnd: () => resolve('end'), onError: (error) => resolve((error as Error & { code: string }).code) }));
}

describe('PooledInvocation deadlines', () => {
  it('expires a near deadline by its own timer', async () => {
    const finished: string[] = [];
    const invocation = new PooledInvocation(request, Date.now() + 30, (_i, result) => finished.push(result));
    expect(await outcome(invocation)).toBe('deadline_exceeded');
    expect(finished).toEqual(['timeout']);
  });

  it('leaves a far deadline to the sweep, which expires it once due and not before', async () => {
    const deadline = Date.now() + NEAR_DEADLINE_MS + 60_000;
    const finished: string[] = [];
    const invocation = new PooledInvocation(request, deadline, (_i, result) => finished.push(result));
    invocation.checkDeadline(deadline - 1);
    expect(invocation.isFinished).toBe(false);
    const result = outcome(invocation);
    invocation.checkDeadline(deadline);
    expect(await result).toBe('deadline_exceeded');
    expect(finished).toEqual(['timeout']);
    invocation.checkDeadline(deadline + 1_000);
    expect(finished).toEqual(['timeout']);
  });
});
