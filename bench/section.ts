import type { BenchRow } from './report.js';

/** What every bench section is given. */
export interface SectionContext {
  /** Measurement window per figure, ms. */
  durationMs: number;
  samples: number;
}

export type Section = (context: SectionContext) => Promise<BenchRow[]>;
