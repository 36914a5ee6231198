import { describe, expect, it } from 'vitest';
import { MAX_LINE_BYTES } from '../../engine/isolate/output-lines.js';
import { OutputRing, ringBytesFor, MAX_RING_BYTES } from '../../engine/worker/output-ring.js';

const text = (ring: OutputRing) => ring.lines().map((entry) => `${entry.stream}:${entry.line}`);

describe('OutputRing: raw chunks bounded by bytes, lines split on demand', () => {
  it('splits lines across chunks, per stream, with the last unterminated line', () => {
    const ring = new OutputRing(1024);
    ring.push('w', 'stdout', Buffer.from('one\ntw'));
    ring.push('w', 'stderr', Buffer.from('err\r\n'));
    ring.push('w', 'stdout', Buffer.from('o\nthree'));
    expect(text(ring)).toEqual(['stdout:one', 'stderr:err', 'stdout:two', 'stdout:three']);
  });

  it('never holds more than its bytes and drops a line cut by eviction', () => {
    const ring = new OutputRing(20);
    for (let i = 0; i < 1000; i++) ring.push('w', 'stdout', Buffer.from(`line ${i}\n`));
    expect(ring.size).toBeLessThanOrEqual(20);
    // 20 bytes hold "line 997\n" (9), "line 998\n", "line 999\n" partly: the cut one is dropped.
    expect(text(ring)).toEqual(['stdout:line 998', 'stdout:line 999']);
  });

  it('keeps the end of a single chunk larger than the ring', () => {
    const ring = new OutputRing(16);
    ring.push('w', 'stdout', Buffer.from(`${'x'.repeat(100)}\nlast line\n`));
    expect(text(ring)).toEqual(['stdout:last line']);
  });

  it('all() gives the last maxLines lines; tail() skips stack frames', () => {
    const ring = new OutputRing(4096, 3);
    ring.push('w', 'stderr', Buffer.from('a\nb\nError: boom\n    at f (x.js:1:1)\n'));
    expect(ring.all()).toEqual(['b', 'Error: boom', '    at f (x.js:1:1)']);
    expect(ring.tail(2)).toBe('b | Error: boom');
  });

  it('cuts very long lines in pieces without splitting a character', () => {
    const ring = new OutputRing(64 * 1024);
    ring.push('w', 'stdout', Buffer.from(`${'a'.repeat(MAX_LINE_BYTES - 1)}€€\n`));
    const lines = ring.lines().map((entry) => entry.line);
    expect(lines).toEqual(['a'.repeat(MAX_LINE_BYTES - 1), '€€']);
  });

  it('does not keep a large allocation alive for a small view of it', () => {
    const ring = new OutputRing(1024);
    const big = Buffer.alloc(1024 * 1024, 0x61);
    ring.push('w', 'stdout', big.subarray(0, 10));
    ring.push('w', 'stdout', Buffer.from('\n'));
    expect(ring.lines()[0]!.line).toBe('a'.repeat(10));
    expect(ringBytesFor(50)).toBe(100 * 1024);
    expect(ringBytesFor(1)).toBe(64 * 1024);
    expect(ringBytesFor(10_000)).toBe(MAX_RING_BYTES);
  });
});
