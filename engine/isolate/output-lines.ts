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

type OutputListener = (stream: 'stdout' | 'stderr', line: string) => void;

/**
 * Hands a worker's output lines to its listeners; lines that come before the first listener is
 * registered are kept (up to `earlyLimit`) and replayed to it, so no first line is lost.
 */
export class OutputFanout {
  private readonly listeners: OutputListener[] = [];
  private early: Array<[stream: 'stdout' | 'stderr', line: string]> | undefined = [];

  constructor(private readonly earlyLimit = 1_000) {}

  listen(listener: OutputListener): void {
    this.listeners.push(listener);
    const early = this.early;
    this.early = undefined;
    if (early) for (const [stream, line] of early) listener(stream, line);
  }

  deliver(stream: 'stdout' | 'stderr', line: string): void {
    if (this.early) {
      if (this.early.length < this.earlyLimit) this.early.push([stream, line]);
      return;
    }
    for (const listener of this.listeners) listener(stream, line);
  }
}
