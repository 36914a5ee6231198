/** One benchmark figure beside its baseline measured in the same run. */
export interface BenchRow {
  section: string;
  name: string;
  value: number;
  baselineName: string;
  baseline: number;
  unit: string;
  /** 'higher' when bigger is better (throughput), 'lower' for times. */
  better: 'higher' | 'lower';
  /** Human description of the target, e.g. '>= 0.6x' or '<= 1.5x + 20 ms'. */
  target?: string;
  /** Whether the target is met. */
  met?: boolean;
}

export function ratio(row: Pick<BenchRow, 'value' | 'baseline'>): number {
  return row.baseline === 0 ? Number.NaN : row.value / row.baseline;
}

function format(value: number, unit: string): string {
  if (unit === 'ms') return `${value.toFixed(value < 10 ? 2 : 1)} ms`;
  if (unit === 'calls/s' || unit === 'events/s') return `${Math.round(value).toLocaleString('en-US')} ${unit}`;
  return `${value.toFixed(2)} ${unit}`;
}

export function printRows(rows: BenchRow[]): void {
  let section = '';
  for (const row of rows) {
    if (row.section !== section) {
      section = row.section;
      process.stdout.write(`\n## ${section}\n`);
    }
    const target = row.target ? `  target ${row.target}: ${row.met ? 'met' : 'NOT met'}` : '';
    process.stdout.write(
      `${row.name.padEnd(52)} ${format(row.value, row.unit).padStart(18)}   vs ${row.baselineName} ${format(row.baseline, row.unit)}   ratio ${ratio(row).toFixed(2)}x${target}\n`,
    );
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
