const NOISE = /^\s+at\s|^Node\.js v\d/;

/** The last N output lines of a worker, for crashlogs and crash reasons. */
export class OutputRing {
  private readonly lines: string[] = [];

  constructor(private readonly limit: number) {}

  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.limit) this.lines.shift();
  }

  all(): string[] {
    return this.lines.slice();
  }

  /**
   * The last `count` informative lines joined for an error message, each shortened. Stack frames
   * and blank lines are skipped so the error itself (not its call stack) reaches the user.
   */
  tail(count: number): string {
    return this.lines
      .filter((line) => line.trim() !== '' && !NOISE.test(line))
      .slice(-count)
      .map((line) => (line.length > 200 ? `${line.slice(0, 200)}…` : line))
      .join(' | ');
  }
}
