import { describe, expect, it } from 'vitest';
import {
  childContext,
  continueTrace,
  FLAG_RANDOM,
  FLAG_SAMPLED,
  formatTraceparent,
  isSampled,
  newRootContext,
  parseTraceparent,
  parseTracestate,
  traceHeaders,
  traceIdArgument,
} from '../../engine/trace/context.js';
import { InvalidInputError } from '../../engine/errors/index.js';

const TRACE = '12345678901234567890123456789012';
const PARENT = '1234567890123456';
const VALID = `00-${TRACE}-${PARENT}-01`;

describe('parseTraceparent (W3C Trace Context, the spec test suite cases)', () => {
  it('accepts version 00 with lowercase hex fields and surrounding spaces or tabs', () => {
    for (const value of [VALID, ` ${VALID}`, `\t${VALID}`, `${VALID} `, `${VALID}\t`]) {
      expect(parseTraceparent(value)).toEqual({ ok: true, value: { version: 0, traceId: TRACE, parentId: PARENT, flags: 1 } });
    }
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-ff`)).toMatchObject({ ok: true, value: { flags: 255 } });
  });

  it.each([
    ['version 00 with trailing data', `${VALID}.`],
    ['version 00 with a future suffix', `${VALID}-what-the-future-will-be-like`],
    ['version ff', `ff-${TRACE}-${PARENT}-01`],
    ['illegal version characters', `.0-${TRACE}-${PARENT}-01`],
    ['illegal version characters (2)', `0.-${TRACE}-${PARENT}-01`],
    ['uppercase version', `0A-${TRACE}-${PARENT}-01`],
    ['version too long', `000-${TRACE}-${PARENT}-01`],
    ['version too long (2)', `0000-${TRACE}-${PARENT}-01`],
    ['version too short', `0-${TRACE}-${PARENT}-01`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${PARENT}-01`],
    ['illegal trace id character', `00-.${TRACE.slice(1)}-${PARENT}-01`],
    ['illegal trace id character (end)', `00-${TRACE.slice(0, 31)}.-${PARENT}-01`],
    ['uppercase trace id', `00-${TRACE.slice(0, 31)}A-${PARENT}-01`],
    ['trace id too long', `00-${TRACE}3-${PARENT}-01`],
    ['trace id too short', `00-${TRACE.slice(0, 31)}-${PARENT}-01`],
    ['all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['illegal parent id character', `00-${TRACE}-.${PARENT.slice(1)}-01`],
    ['illegal parent id character (end)', `00-${TRACE}-${PARENT.slice(0, 15)}.-01`],
    ['parent id too long', `00-${TRACE}-${PARENT}7-01`],
    ['parent id too short', `00-${TRACE}-${PARENT.slice(0, 15)}-01`],
    ['illegal flags', `00-${TRACE}-${PARENT}-.0`],
    ['illegal flags (2)', `00-${TRACE}-${PARENT}-0.`],
    ['flags too long', `00-${TRACE}-${PARENT}-001`],
    ['flags too short', `00-${TRACE}-${PARENT}-1`],
    ['a future version with a non-dash after the flags', `cc-${TRACE}-${PARENT}-01.what-the-future-will-be-like`],
    ['a future version too short', `cc-${TRACE}-${PARENT}-1`],
    ['empty', ''],
  ])('rejects %s', (_name, value) => {
    const result = parseTraceparent(value);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason.length).toBeGreaterThan(0);
  });

  it('parses a future version leniently: its first 55 characters as version 00, the rest ignored', () => {
    expect(parseTraceparent(`cc-${TRACE}-${PARENT}-01`)).toEqual({ ok: true, value: { version: 0xcc, traceId: TRACE, parentId: PARENT, flags: 1 } });
    expect(parseTraceparent(`cc-${TRACE}-${PARENT}-01-what-the-future-will-be-like`)).toMatchObject({ ok: true, value: { version: 0xcc, traceId: TRACE } });
  });

  it('formats version 00 and round-trips', () => {
    const header = formatTraceparent({ traceId: TRACE, spanId: PARENT, flags: 3 });
    expect(header).toBe(`00-${TRACE}-${PARENT}-03`);
    expect(parseTraceparent(header)).toMatchObject({ ok: true, value: { traceId: TRACE, parentId: PARENT, flags: 3 } });
    expect(() => formatTraceparent({ traceId: '0'.repeat(32), spanId: PARENT, flags: 0 })).toThrow(/trace id/);
    expect(() => formatTraceparent({ traceId: TRACE, spanId: 'xyz', flags: 0 })).toThrow(/span id/);
  });
});

describe('parseTracestate', () => {
  it('combines repeated headers in order, drops empty members and whitespace', () => {
    expect(parseTracestate(['foo=1,bar=2', 'rojo=1,congo=2', 'baz=3'])).toBe('foo=1,bar=2,rojo=1,congo=2,baz=3');
    expect(parseTracestate('foo=1 \t , \t bar=2, \t baz=3')).toBe('foo=1,bar=2,baz=3');
    expect(parseTracestate(['', 'foo=1'])).toBe('foo=1');
    expect(parseTracestate('\t foo=1 \t')).toBe('foo=1');
    expect(parseTracestate('')).toBeUndefined();
    expect(parseTracestate(undefined)).toBeUndefined();
  });

  it('accepts every legal key and value character, with and without a tenant', () => {
    const key = 'abcdefghijklmnopqrstuvwxyz0123456789_-*/';
    const value = [[0x20, 0x2b], [0x2d, 0x3c], [0x3e, 0x7e]].map(([from, to]) => Array.from({ length: to! - from! + 1 }, (_x, i) => String.fromCharCode(from! + i)).join('')).join('').slice(1);
    expect(parseTracestate(`${key}=${value}`)).toBe(`${key}=${value}`);
    expect(parseTracestate(`${key}@a-z0-9_-*/=1`)).toBe(`${key}@a-z0-9_-*/=1`);
  });

  it.each([
    ['duplicate keys', ['foo=1,foo=1']],
    ['duplicate keys in two headers', ['foo=1', 'foo=2']],
    ['a space inside the key', ['foo =1']],
    ['an uppercase key', ['FOO=1']],
    ['a dot in the key', ['foo.bar=1']],
    ['an empty system id', ['foo@=1,bar=2']],
    ['an empty tenant id', ['@foo=1,bar=2']],
    ['two @', ['foo@@bar=1,bar=2']],
    ['three parts', ['foo@bar@baz=1,bar=2']],
    ['a key of 257 characters', ['foo=1', `${'z'.repeat(257)}=1`]],
    ['a tenant of 242 characters', ['foo=1', `${'t'.repeat(242)}@v=1`]],
    ['a system id of 15 characters', ['foo=1', `t@${'v'.repeat(15)}=1`]],
    ['no =', ['foo']],
    ['a value with =', ['foo=a=b']],
    ['33 members', [Array.from({ length: 33 }, (_x, i) => `k${i}=${i}`).join(',')]],
  ])('discards the whole header for %s', (_name, headers) => {
    expect(parseTracestate(headers)).toBeUndefined();
  });

  it('keeps 32 members and keys at their length limits', () => {
    const members = Array.from({ length: 32 }, (_x, i) => `k${i}=${i}`).join(',');
    expect(parseTracestate(members)?.split(',')).toHaveLength(32);
    expect(parseTracestate(['foo=1', `${'z'.repeat(256)}=1`])).toMatch(/^foo=1,z{256}=1$/);
    expect(parseTracestate(['foo=1', `${'t'.repeat(241)}@${'v'.repeat(14)}=1`])).toMatch(/^foo=1,t{241}@v{14}=1$/);
  });

  it('bounds what it passes on to 512 characters: members over 128 characters first, then from the end', () => {
    const big = `big=${'x'.repeat(200)}`;
    const small = Array.from({ length: 20 }, (_x, i) => `k${String(i).padStart(2, '0')}=${'v'.repeat(30)}`);
    const result = parseTracestate([small.slice(0, 10).join(','), big, small.slice(10).join(',')])!;
    expect(result.length).toBeLessThanOrEqual(512);
    expect(result).not.toContain('big=');
    expect(result.startsWith(small.slice(0, 10).join(','))).toBe(true);
    expect(result.split(',').length).toBeLessThan(20);
    // Under 512 characters a large member is kept.
    expect(parseTracestate(['a=1', big])).toBe(`a=1,${big}`);
  });
});

describe('contexts', () => {
  it('creates roots with random non-zero ids, sampled and marked random unless told otherwise', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const root = newRootContext();
      expect(root.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(root.spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(root.parentSpanId).toBeUndefined();
      expect(root.flags).toBe(FLAG_SAMPLED | FLAG_RANDOM);
      ids.add(root.traceId);
    }
    expect(ids.size).toBe(200);
    expect(isSampled(newRootContext({ sampled: false }))).toBe(false);
    // An all-zero draw is never used as an id.
    let draws = 0;
    const zeroFirst = (bytes: number) => (draws++ < 2 ? Buffer.alloc(bytes) : Buffer.alloc(bytes, 0xab));
    expect(newRootContext({ random: zeroFirst })).toMatchObject({ traceId: 'ab'.repeat(16), spanId: 'ab'.repeat(8) });
  });

  it('child keeps the trace, flags and tracestate, with a new span whose parent is the given one', () => {
    const parent = { ...newRootContext(), traceState: 'foo=1' };
    const child = childContext(parent);
    expect(child).toMatchObject({ traceId: parent.traceId, parentSpanId: parent.spanId, flags: parent.flags, traceState: 'foo=1' });
    expect(child.spanId).not.toBe(parent.spanId);
    // Unknown flag bits are not passed on.
    expect(childContext({ ...parent, flags: 0xff }).flags).toBe(FLAG_SAMPLED | FLAG_RANDOM);
    expect(childContext({ ...parent, flags: 0 }).flags).toBe(0);
  });

  it('continues a valid traceparent (any header name casing) with its tracestate', () => {
    const incoming = continueTrace({ TraceParent: `00-${TRACE}-${PARENT}-00`, TRACESTATE: 'foo=1,bar=2' });
    expect(incoming.remote).toEqual({ traceId: TRACE, spanId: PARENT, flags: 0, traceState: 'foo=1,bar=2' });
    expect(incoming.context).toMatchObject({ traceId: TRACE, parentSpanId: PARENT, flags: 0, traceState: 'foo=1,bar=2' });
    expect(incoming.context.spanId).not.toBe(PARENT);
    expect(incoming.ignored).toBeUndefined();
    expect(traceHeaders(incoming.context)).toEqual({ traceparent: `00-${TRACE}-${incoming.context.spanId}-00`, tracestate: 'foo=1,bar=2' });
    // A getter, like grpc-js Metadata.get, which returns every value of the key.
    const metadata = new Map<string, string[]>([['traceparent', [VALID]]]);
    expect(continueTrace((name) => metadata.get(name)).remote?.traceId).toBe(TRACE);
    // A future version is continued, and passed on as version 00.
    const future = continueTrace({ traceparent: `cc-${TRACE}-${PARENT}-01-future` });
    expect(traceHeaders(future.context).traceparent).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
  });

  it.each([
    ['absent', {}, undefined],
    ['malformed', { traceparent: `00-${TRACE}-${PARENT}-01.`, tracestate: 'foo=1' }, /malformed traceparent/],
    ['sent twice', { traceparent: [`00-${TRACE.slice(0, 31)}1-${PARENT}-01`, VALID] }, /2 times/],
    ['binary', { traceparent: [Buffer.from(VALID)] }, /not text/],
    ['under a wrong name', { 'trace-parent': VALID }, undefined],
    ['an empty list', { traceparent: [] }, undefined],
    ['sent under two spellings', { traceparent: VALID, TraceParent: VALID }, /2 times/],
  ])('starts a new trace (and drops tracestate) when traceparent is %s', (_name, carrier, ignored) => {
    const incoming = continueTrace(carrier);
    expect(incoming.remote).toBeUndefined();
    expect(incoming.context.traceId).not.toBe(TRACE);
    expect(incoming.context.parentSpanId).toBeUndefined();
    expect(incoming.context.traceState).toBeUndefined();
    if (ignored) expect(incoming.ignored).toMatch(ignored);
    else expect(incoming.ignored).toBeUndefined();
  });
});

describe('traceIdArgument', () => {
  it('takes a trace id in either case or a whole traceparent, and names the field when it is neither', () => {
    expect(traceIdArgument(` ${TRACE.toUpperCase().replace(/^1/, 'A')}\t`)).toBe(TRACE.replace(/^1/, 'a'));
    expect(traceIdArgument(VALID)).toBe(TRACE);
    for (const bad of ['', '0'.repeat(32), 'xyz', `${TRACE}0`, `00-${TRACE}-${PARENT}-01.`]) {
      let caught: unknown;
      try {
        traceIdArgument(bad);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(InvalidInputError);
      expect((caught as InvalidInputError).field).toBe('traceId');
    }
  });
});
