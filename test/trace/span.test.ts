import { describe, expect, it } from 'vitest';
import { EngineError, InvalidInputError, UnavailableError } from '../../engine/errors/index.js';
import { newRootContext } from '../../engine/trace/context.js';
import { worstSpan } from './spans.js';
import { errorOutcome, finishSpan, MAX_SPAN_JSON_BYTES, SPAN_LIMITS, startSpan, validateSpan, type Span } from '../../engine/trace/span.js';

function fieldOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as EngineError).code).toBe('invalid_argument');
    return (error as InvalidInputError).field;
  }
  throw new Error('expected the span to be refused');
}

describe('spans', () => {
  const context = { ...newRootContext(), parentSpanId: 'abcdefabcdefabcd' };

  it('start records the step of a context; finish adds end and outcome', () => {
    const open = startSpan(context, { kind: 'queued', target: 'mail@send', node: 'n1', worker: 'w7', attempt: 2, eventId: 'ev-1', start: 1_000 });
    expect(open).toEqual({ traceId: context.traceId, spanId: context.spanId, parentSpanId: 'abcdefabcdefabcd', kind: 'queued', target: 'mail@send', node: 'n1', worker: 'w7', attempt: 2, eventId: 'ev-1', start: 1_000 });
    expect(validateSpan(open)).toEqual(open);
    const done = finishSpan(open, { status: 'ok' }, 1_250);
    expect(done).toMatchObject({ end: 1_250, outcome: { status: 'ok' } });
    expect(open.end).toBeUndefined();
    const failed = finishSpan(open, { error: new UnavailableError('worker_crashed', 'worker exited with code 3') }, 1_300);
    expect(failed.outcome).toEqual({ status: 'error', code: 'worker_crashed', message: 'worker exited with code 3' });
    expect(errorOutcome(new TypeError('boom'))).toEqual({ status: 'error', code: 'internal', message: 'boom' });
  });

  it('bounds text fields and never ends before it starts', () => {
    const open = startSpan(context, { kind: 'call', target: 'x'.repeat(1_000), node: 'n'.repeat(1_000), start: 5_000 });
    expect(open.target.length).toBe(SPAN_LIMITS.targetChars);
    expect(open.node.length).toBe(SPAN_LIMITS.nodeChars);
    const done = finishSpan(open, { status: 'error', code: 'handler_error', message: 'm'.repeat(10_000) }, 4_000);
    expect(done.end).toBe(5_000);
    expect(done.outcome).toMatchObject({ message: expect.stringMatching(/^m+…$/) });
    expect((done.outcome as { message: string }).message.length).toBe(SPAN_LIMITS.messageChars);
    expect(validateSpan(done)).toEqual(done);
  });

  it('a span with every text field at its bound, all escaped in JSON, fits MAX_SPAN_JSON_BYTES', () => {
    const worst = worstSpan();
    expect(validateSpan(worst)).toEqual(worst);
    expect(Buffer.byteLength(JSON.stringify(worst))).toBeLessThanOrEqual(MAX_SPAN_JSON_BYTES);
  });

  it('validation names the offending field and keeps only span fields', () => {
    const good = finishSpan(startSpan(context, { kind: 'call', target: 'a@b', node: 'n', start: 10 }), { status: 'ok' }, 20);
    const withExtra = { ...good, huge: 'x'.repeat(100_000) } as Span;
    expect(validateSpan(withExtra)).toEqual(good);
    const cases: Array<[Partial<Record<keyof Span, unknown>>, string]> = [
      [{ traceId: 'A'.repeat(32) }, 'span.traceId'],
      [{ traceId: '0'.repeat(32) }, 'span.traceId'],
      [{ spanId: '12' }, 'span.spanId'],
      [{ parentSpanId: '0'.repeat(16) }, 'span.parentSpanId'],
      [{ kind: 'dance' }, 'span.kind'],
      [{ target: '' }, 'span.target'],
      [{ node: 'n'.repeat(SPAN_LIMITS.nodeChars + 1) }, 'span.node'],
      [{ worker: 5 }, 'span.worker'],
      [{ start: -1 }, 'span.start'],
      [{ end: 5 }, 'span.end'],
      [{ attempt: 0 }, 'span.attempt'],
      [{ outcome: { status: 'error', code: '', message: '' } }, 'span.outcome'],
      [{ outcome: undefined }, 'span.outcome'],
      [{ eventId: '' }, 'span.eventId'],
    ];
    for (const [change, field] of cases) expect(fieldOf(() => validateSpan({ ...good, ...change } as Span))).toBe(field);
    const open = { ...good } as Partial<Span>;
    delete open.end;
    expect(fieldOf(() => validateSpan(open as Span))).toBe('span.end');
  });
});

