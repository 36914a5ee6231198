import type { LogLine } from '../api/facade.js';
import { LineSplitter } from '../isolate/output-lines.js';
import { AsyncChannel } from '../util/async-channel.js';
import { OutputRing } from '../worker/output-ring.js';

/** Bytes of recent output (and engine notes) kept per app. */
export const APP_LOG_BYTES = 1024 * 1024;

/**
 * Recent output of an app's workers and the engine's notes about them, with live followers.
 * Output is kept as raw chunks in a byte-bounded ring: lines are split when logs are read, and
 * as output arrives only while someone follows.
 */
export class AppLogs {
  private readonly ring: OutputRing;
  private readonly followers = new Set<AsyncChannel<LogLine>>();
  private readonly splitters = new Map<string, LineSplitter>();

  constructor(limitBytes = APP_LOG_BYTES) {
    this.ring = new OutputRing(limitBytes);
  }

  /** One line from the engine (or a whole line of output). */
  add(workerId: string, stream: LogLine['stream'], line: string): void {
    const timestamp = Date.now();
    this.ring.push(workerId, stream, Buffer.from(`${line}\n`), timestamp);
    if (this.followers.size === 0) return;
    const entry: LogLine = { timestamp, workerId, stream, line };
    for (const follower of this.followers) follower.push(entry);
  }

  /** A raw chunk of a worker's output, as read. */
  addOutput(workerId: string, stream: 'stdout' | 'stderr', chunk: Buffer): void {
    const timestamp = Date.now();
    this.ring.push(workerId, stream, chunk, timestamp);
    if (this.followers.size === 0) return;
    const key = `${workerId}\0${stream}`;
    let splitter = this.splitters.get(key);
    if (!splitter) {
      splitter = new LineSplitter((line) => {
        const entry: LogLine = { timestamp: Date.now(), workerId, stream, line };
        for (const follower of this.followers) follower.push(entry);
      });
      this.splitters.set(key, splitter);
    }
    splitter.push(chunk);
  }

  recent(count: number): LogLine[] {
    const lines = this.ring.lines();
    return lines.slice(Math.max(0, lines.length - count)).map((entry) => ({
      timestamp: entry.at,
      workerId: entry.source,
      stream: entry.stream as LogLine['stream'],
      line: entry.line,
    }));
  }

  async *read(options: { lines: number; follow: boolean; signal: AbortSignal }): AsyncIterable<LogLine> {
    const backlog = this.recent(options.lines);
    if (!options.follow) {
      yield* backlog;
      return;
    }
    const channel = new AsyncChannel<LogLine>(10_000);
    for (const line of backlog) channel.push(line);
    this.followers.add(channel);
    const stop = () => channel.close();
    options.signal.addEventListener('abort', stop, { once: true });
    try {
      yield* channel;
    } finally {
      options.signal.removeEventListener('abort', stop);
      this.followers.delete(channel);
      if (this.followers.size === 0) this.splitters.clear();
    }
  }

  /** Ends every follower (app removed, engine stopping). */
  closeFollowers(): void {
    for (const follower of this.followers) follower.close();
    this.followers.clear();
    this.splitters.clear();
  }
}
