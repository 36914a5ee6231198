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

  /** The last `count` lines joined for an error message, each shortened. */
  tail(count: number): string {
    return this.lines
      .slice(-count)
      .map((line) => (line.length > 200 ? `${line.slice(0, 200)}…` : line))
      .join(' | ');
  }
}
