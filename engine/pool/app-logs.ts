import type { LogLine } from '../api/facade.js';
import { AsyncChannel } from '../util/async-channel.js';

/** Recent output of an app's workers and the engine's notes about them, with live followers. */
export class AppLogs {
  private readonly lines: LogLine[] = [];
  private readonly followers = new Set<AsyncChannel<LogLine>>();

  constructor(private readonly limit = 1_000) {}

  add(workerId: string, stream: LogLine['stream'], line: string): void {
    const entry: LogLine = { timestamp: Date.now(), workerId, stream, line };
    this.lines.push(entry);
    if (this.lines.length > this.limit) this.lines.shift();
    for (const follower of this.followers) follower.push(entry);
  }

  recent(count: number): LogLine[] {
    return this.lines.slice(-count);
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
    }
  }

  /** Ends every follower (app removed, engine stopping). */
  closeFollowers(): void {
    for (const follower of this.followers) follower.close();
    this.followers.clear();
  }
}
