import { StringDecoder } from 'node:string_decoder';

/** Longest line delivered; a longer one is delivered in pieces of this size. */
export const MAX_LINE_BYTES = 8 * 1024;

/**
 * Splits a byte stream into lines (without the newline; a trailing `\r` is dropped too). Multi-byte
 * characters split across reads are decoded whole. `end()` delivers a last line without newline.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';

  constructor(private readonly onLine: (line: string) => void) {}

  push(data: Buffer): void {
    let text = this.partial + this.decoder.write(data);
    let newline = text.indexOf('\n');
    while (newline !== -1) {
      this.emit(text.slice(0, newline));
      text = text.slice(newline + 1);
      newline = text.indexOf('\n');
    }
    // A line that never ends must not grow without bound.
    while (Buffer.byteLength(text) > MAX_LINE_BYTES) {
      const cut = cutAt(text, MAX_LINE_BYTES);
      this.onLine(text.slice(0, cut));
      text = text.slice(cut);
    }
    this.partial = text;
  }

  end(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    if (rest !== '') this.emit(rest);
  }

  private emit(line: string): void {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    while (Buffer.byteLength(line) > MAX_LINE_BYTES) {
      const cut = cutAt(line, MAX_LINE_BYTES);
      this.onLine(line.slice(0, cut));
      line = line.slice(cut);
    }
    this.onLine(line);
  }
}

/** Index of the longest prefix of `text` of at most `maxBytes` UTF-8 bytes (not inside a surrogate pair). */
function cutAt(text: string, maxBytes: number): number {
  let bytes = 0;
  let i = 0;
  while (i < text.length) {
    const code = text.codePointAt(i)!;
    const size = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    if (bytes + size > maxBytes) break;
    bytes += size;
    i += code >= 0x10000 ? 2 : 1;
  }
  return Math.max(i, 1);
}

type Stream = 'stdout' | 'stderr';
type DataListener = (stream: Stream, chunk: Buffer) => void;
type LineListener = (stream: Stream, line: string) => void;

/**
 * Hands a worker's raw output chunks to its listeners: no per-line work unless a listener asked
 * for lines (`listenLines`). Output that comes before the first listener is kept (up to
 * `earlyBytes`) and replayed to it, so no first line is lost.
 */
export class OutputFanout {
  private readonly listeners: DataListener[] = [];
  private readonly splitters: LineSplitter[] = [];
  private early: Array<[stream: Stream, chunk: Buffer]> | undefined = [];
  private earlyBytes = 0;
  private ended = false;

  constructor(private readonly earlyLimit = 1024 * 1024) {}

  listen(listener: DataListener): void {
    this.listeners.push(listener);
    const early = this.early;
    this.early = undefined;
    if (early) for (const [stream, chunk] of early) listener(stream, chunk);
  }

  /** Lines instead of chunks; the last unterminated line comes at `end()`. */
  listenLines(listener: LineListener): void {
    const stdout = new LineSplitter((line) => listener('stdout', line));
    const stderr = new LineSplitter((line) => listener('stderr', line));
    this.splitters.push(stdout, stderr);
    this.listen((stream, chunk) => (stream === 'stdout' ? stdout : stderr).push(chunk));
    if (this.ended) this.end();
  }

  deliver(stream: Stream, chunk: Buffer): void {
    if (this.early) {
      if (this.earlyBytes < this.earlyLimit) {
        const kept = chunk.subarray(0, this.earlyLimit - this.earlyBytes);
        this.early.push([stream, kept]);
        this.earlyBytes += kept.length;
      }
      return;
    }
    for (const listener of this.listeners) listener(stream, chunk);
  }

  /** The output ended: line listeners get their last unterminated lines. */
  end(): void {
    this.ended = true;
    for (const splitter of this.splitters.splice(0)) splitter.end();
  }
}
