/** How results reach the user: aligned tables for people, JSON for scripts. */

export interface OutputOptions {
  json: boolean;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printTable(headers: string[], rows: Array<Array<string | number | boolean | undefined>>): void {
  const cells = rows.map((row) => row.map((cell) => (cell === undefined ? '' : String(cell))));
  const widths = headers.map((header, i) => Math.max(header.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd();
  const out = [line(headers), ...cells.map(line)];
  process.stdout.write(`${out.join('\n')}\n`);
}

/** key: value lines, aligned. */
export function printFields(fields: Array<[string, string | number | boolean | undefined]>): void {
  const width = Math.max(...fields.map(([key]) => key.length));
  for (const [key, value] of fields) {
    if (value === undefined || value === '') continue;
    process.stdout.write(`${`${key}:`.padEnd(width + 2)}${value}\n`);
  }
}

/** Prints `value` as JSON with --json, else calls `human`. */
export function output<T>(options: OutputOptions, value: T, human: (value: T) => void): void {
  if (options.json) printJson(value);
  else human(value);
}

export function formatTime(ms: number): string {
  return ms > 0 ? new Date(ms).toISOString() : '';
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
