import { StringDecoder } from 'node:string_decoder';
import { MAX_LINE_BYTES } from '../isolate/output-lines.js';

const NOISE = /^\s+at\s|^Node\.js v\d/;
const NEWLINE = 0x0a;

/** Most output bytes one worker's ring keeps, whatever the profile's crashlog-limit. */
export const MAX_RING_BYTES = 1024 * 1024;
/** Least it keeps, so a small crashlog-limit still holds a few long lines. */
export const MIN_RING_BYTES = 64 * 1024;

/** Bytes a worker keeps for a crashlog of `lines` lines: 2 KiB a line, within 64 KiB .. 1 MiB. */
export function ringBytesFor(lines: number): number {
  return Math.min(MAX_RING_BYTES, Math.max(MIN_RING_BYTES, lines * 2048));
}

export interface RingLine {
  source: string;
  stream: string;
  line: string;
  /** When the chunk that ended the line arrived (epoch ms). */
  at: number;
}

interface Entry {
  key: string;
  source: string;
  stream: string;
  data: Buffer;
  at: number;
}

/**
 * The last output of one or more sources (workers) as raw chunks, bounded by bytes: pushing is
 * O(1) with no per-line work; lines are split only when `lines()` is asked for (a crashlog, an
 * error message, a log read). The oldest bytes go first; a line cut by that is dropped whole.
 */
export class OutputRing {
  private entries: Entry[] = [];
  private head = 0;
  private bytes = 0;
  /** Keys whose retained bytes start in the middle of a line. */
  private readonly cut = new Set<string>();

  constructor(
    readonly maxBytes: number,
    /** Lines `all()` and `tail()` look at (the newest). */
    private readonly maxLines = Infinity,
  ) {}

  get size(): number {
    return this.bytes;
  }

  push(source: string, stream: string, chunk: Buffer, at = Date.now()): void {
    if (chunk.length === 0) return;
    const key = `${source}\0${stream}`;
    let data = chunk;
    if (data.length >= this.maxBytes) {
      // This chunk alone fills the ring: everything before it goes.
      data = data.subarray(data.length - this.maxBytes);
      this.entries = [];
      this.head = 0;
      this.bytes = 0;
      this.cut.clear();
      if (data.length < chunk.length && chunk[chunk.length - data.length - 1] !== NEWLINE) this.cut.add(key);
    }
    // A small view of a large allocation would keep all of it alive.
    if (data.buffer.byteLength > data.length * 2) data = Buffer.from(data);
    this.entries.push({ key, source, stream, data, at });
    this.bytes += data.length;
    this.evict();
  }

  /** Every retained line, oldest first; each line at most MAX_LINE_BYTES (longer ones in pieces). */
  lines(): RingLine[] {
    const out: RingLine[] = [];
    const partial = new Map<string, { entry: Entry; pieces: Buffer[]; skip: boolean }>();
    for (let i = this.head; i < this.entries.length; i++) {
      const entry = this.entries[i]!;
      let state = partial.get(entry.key);
      if (!state) {
        state = { entry, pieces: [], skip: this.cut.has(entry.key) };
        partial.set(entry.key, state);
      }
      state.entry = entry;
      const data = entry.data;
      let start = 0;
      let newline = data.indexOf(NEWLINE, start);
      while (newline !== -1) {
        const piece = data.subarray(start, newline);
        if (state.skip) state.skip = false;
        else emit(out, entry, state.pieces.length > 0 ? Buffer.concat([...state.pieces, piece]) : piece);
        state.pieces = [];
        start = newline + 1;
        newline = data.indexOf(NEWLINE, start);
      }
      if (start < data.length) state.pieces.push(data.subarray(start));
    }
    for (const state of partial.values()) {
      if (state.pieces.length > 0 && !state.skip) emit(out, state.entry, Buffer.concat(state.pieces));
    }
    return out;
  }

  /** The last `maxLines` lines, text only. */
  all(): string[] {
    const lines = this.lines();
    return lines.slice(Math.max(0, lines.length - this.maxLines)).map((entry) => entry.line);
  }

  /**
   * The last `count` informative lines joined for an error message, each shortened. Stack frames
   * and blank lines are skipped so the error itself (not its call stack) reaches the user.
   */
  tail(count: number): string {
    return this.all()
      .filter((line) => line.trim() !== '' && !NOISE.test(line))
      .slice(-count)
      .map((line) => (line.length > 200 ? `${line.slice(0, 200)}…` : line))
      .join(' | ');
  }

  private evict(): void {
    while (this.bytes > this.maxBytes) {
      const oldest = this.entries[this.head]!;
      const excess = this.bytes - this.maxBytes;
      if (oldest.data.length <= excess) {
        this.head++;
        this.bytes -= oldest.data.length;
        if (oldest.data[oldest.data.length - 1] === NEWLINE) this.cut.delete(oldest.key);
        else this.cut.add(oldest.key);
      } else {
        if (oldest.data[excess - 1] === NEWLINE) this.cut.delete(oldest.key);
        else this.cut.add(oldest.key);
        oldest.data = oldest.data.subarray(excess);
        this.bytes -= excess;
      }
    }
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

function emit(out: RingLine[], entry: Entry, bytes: Buffer): void {
  let line = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.subarray(0, bytes.length - 1) : bytes;
  while (line.length > MAX_LINE_BYTES) {
    const decoder = new StringDecoder('utf8');
    // Cut before a UTF-8 continuation byte run, so no character is split.
    let cut = MAX_LINE_BYTES;
    while (cut > 0 && (line[cut]! & 0xc0) === 0x80) cut--;
    if (cut === 0) cut = MAX_LINE_BYTES;
    out.push({ source: entry.source, stream: entry.stream, line: decoder.end(line.subarray(0, cut)), at: entry.at });
    line = line.subarray(cut);
  }
  out.push({ source: entry.source, stream: entry.stream, line: line.toString('utf8'), at: entry.at });
}
