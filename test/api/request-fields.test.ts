/** The edge's field checks at their boundaries: the limit itself passes, one past it is refused naming the field. */
import { describe, expect, it } from 'vitest';
import { LONG_DEADLINE_HEADER, moveLongTimeout } from '../../engine/api/long-deadlines.js';
import {
  REQUEST_LIMITS,
  durationField,
  durationText,
  enqueueFields,
  headersField,
  idField,
  invokeFields,
  maxAttemptsField,
  sequenceField,
  targetField,
} from '../../engine/api/request-fields.js';
import { InvalidInputError } from '../../engine/errors/index.js';
import { MAX_TIMER_MS } from '../../engine/util/timers.js';

function refusedField(check: () => unknown): string | undefined {
  try {
    check();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).code).toBe('invalid_argument');
    expect((error as Error).message.startsWith(`${(error as InvalidInputError).field}: `)).toBe(true);
    return (error as InvalidInputError).field;
  }
  return undefined;
}

describe('request fields', () => {
  it('target: two names of at most 64 and one @', () => {
    const longest = `${'a'.repeat(64)}@${'e'.repeat(64)}`;
    expect(longest).toHaveLength(REQUEST_LIMITS.targetChars);
    expect(targetField(longest)).toEqual({ app: 'a'.repeat(64), event: 'e'.repeat(64) });
    for (const bad of [`${longest}x`, `${'a'.repeat(65)}@e`, 'a@b@c', '@e', 'a@', 'noat', '', 'a b@e']) expect(refusedField(() => targetField(bad)), bad).toBe('target');
  });

  it('ids: 1 to 256 characters, no control characters', () => {
    expect(idField('i'.repeat(REQUEST_LIMITS.idChars))).toHaveLength(256);
    for (const bad of ['', 'i'.repeat(257), 'a\tb', 'a\u007fb', 'a\u0085b']) expect(refusedField(() => idField(bad)), JSON.stringify(bad)).toBe('id');
  });

  it('headers: count, name, value and total', () => {
    const atCount = Object.fromEntries(Array.from({ length: REQUEST_LIMITS.headerCount }, (_, i) => [`h${i}`, 'v']));
    expect(headersField(atCount)).toBe(atCount);
    expect(refusedField(() => headersField({ ...atCount, extra: 'v' }))).toBe('headers');
    expect(headersField({ v: 'x'.repeat(REQUEST_LIMITS.headerValueBytes) })).toBeDefined();
    expect(refusedField(() => headersField({ v: 'x'.repeat(REQUEST_LIMITS.headerValueBytes + 1) }))).toBe('headers["v"]');
    expect(refusedField(() => headersField({ v: '€'.repeat(REQUEST_LIMITS.headerValueBytes / 3 + 1) }))).toBe('headers["v"]');
    expect(refusedField(() => headersField({ ['n'.repeat(257)]: 'v' }))).toMatch(/^headers\[/);
    expect(refusedField(() => headersField({ '': 'v' }))).toBe('headers');
    const nearlyFull = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`h${i}`, 'x'.repeat(REQUEST_LIMITS.headerValueBytes - 2)]));
    expect(refusedField(() => headersField(nearlyFull))).toBe('headers');
    expect(headersField(null)).toEqual({});
  });

  it('durations: whole ms up to 366 days, past what setTimeout holds', () => {
    expect(REQUEST_LIMITS.durationMs).toBeGreaterThan(MAX_TIMER_MS);
    expect(durationField(REQUEST_LIMITS.durationMs, 'timeout_ms')).toBe(REQUEST_LIMITS.durationMs);
    for (const bad of [REQUEST_LIMITS.durationMs + 1, -1, 1.5, Number.NaN, Infinity]) expect(refusedField(() => durationField(bad, 'timeout_ms'))).toBe('timeout_ms');
    expect(durationText(undefined, 'T')).toBe(0);
    expect(durationText('1500', 'T')).toBe(1500);
    for (const bad of ['1.5', '-1', ' 1', '1e3', 'x', '9'.repeat(17)]) expect(refusedField(() => durationText(bad, 'T')), bad).toBe('T');
  });

  it('max_attempts, seq and whole requests', () => {
    expect(maxAttemptsField(0)).toBeUndefined();
    expect(maxAttemptsField(REQUEST_LIMITS.maxAttempts)).toBe(REQUEST_LIMITS.maxAttempts);
    expect(refusedField(() => maxAttemptsField(REQUEST_LIMITS.maxAttempts + 1))).toBe('max_attempts');
    expect(sequenceField(Number.MAX_SAFE_INTEGER, 'id')).toBe(Number.MAX_SAFE_INTEGER);
    expect(refusedField(() => sequenceField(2 ** 60, 'id'))).toBe('id');
    expect(invokeFields({ target: 'a@e', headers: { k: 'v' }, timeoutMs: 0 })).toEqual({ app: 'a', event: 'e', headers: { k: 'v' }, timeoutMs: 0 });
    expect(enqueueFields({ target: 'a@e', data: Buffer.from('x'), headers: {}, maxAttempts: 0, delayMs: 0, id: '' })).toEqual({
      app: 'a',
      event: 'e',
      data: Buffer.from('x'),
      headers: {},
      maxAttempts: undefined,
      delayMs: undefined,
      id: undefined,
    });
    expect(refusedField(() => enqueueFields({ target: 'a@e', data: Buffer.alloc(0), headers: {}, maxAttempts: 0, delayMs: 0, id: 'x'.repeat(300) }))).toBe('id');
  });

  it('a grpc-timeout past 2^31-1 ms moves to the long-deadline header; nearer ones stay', () => {
    const near: Record<string, unknown> = { 'grpc-timeout': '2147483S' };
    moveLongTimeout(near, 1000);
    expect(near).toEqual({ 'grpc-timeout': '2147483S' });
    const far: Record<string, unknown> = { 'grpc-timeout': '720H' };
    moveLongTimeout(far, 1000);
    expect(far).toEqual({ [LONG_DEADLINE_HEADER]: String(1000 + 720 * 3_600_000) });
    const malformed: Record<string, unknown> = { 'grpc-timeout': 'soon' };
    moveLongTimeout(malformed, 1000);
    expect(malformed).toEqual({ 'grpc-timeout': 'soon' });
  });
});
