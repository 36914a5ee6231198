/**
 * One conformance check, and the runner that runs them in order. Checks come in groups; once a
 * check fails, the groups after its group are skipped (a broken handshake must not cost a dozen
 * more failures and minutes of timeouts), unless the kit runs with keepGoing.
 */
import { KitContext, type ConformanceOptions } from './context.js';

export interface Check {
  group: string;
  /** Printed as is: says what a conforming runtime does. */
  name: string;
  /** Before the slow factor. */
  timeoutMs: number;
  run(kit: KitContext): Promise<void>;
  /** A reason to skip this check (not a failure), asked just before it runs. */
  skip?(kit: KitContext): string | undefined;
}

/** Thrown by a check that finds it does not apply (e.g. services of a protocol 1 runtime): a skip, not a failure. */
export class SkipCheck extends Error {}

export interface CheckResult {
  group: string;
  name: string;
  status: 'pass' | 'fail' | 'skip';
  /** Why it failed or was skipped. */
  message?: string;
  ms: number;
}

export class KitRun {
  readonly kit: KitContext;
  private failedGroup?: { group: string; name: string };
  private handshakeFailed = false;

  constructor(
    options: ConformanceOptions,
    readonly checks: Check[],
  ) {
    this.kit = new KitContext(options);
  }

  /** Runs one check (in the order of `checks`); never throws. */
  async run(check: Check): Promise<CheckResult> {
    const started = Date.now();
    const skip = this.skipReason(check) ?? check.skip?.(this.kit);
    if (skip) return { group: check.group, name: check.name, status: 'skip', message: skip, ms: 0 };
    const limit = check.timeoutMs * this.kit.slow;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        check.run(this.kit),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`did not finish within ${limit / 1000}s`)), limit))),
      ]);
      return { group: check.group, name: check.name, status: 'pass', ms: Date.now() - started };
    } catch (error) {
      if (error instanceof SkipCheck) return { group: check.group, name: check.name, status: 'skip', message: error.message, ms: Date.now() - started };
      this.failedGroup ??= { group: check.group, name: check.name };
      if (check.group === 'handshake') this.handshakeFailed = true;
      return { group: check.group, name: check.name, status: 'fail', message: (error as Error).message, ms: Date.now() - started };
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    return this.kit.close();
  }

  private skipReason(check: Check): string | undefined {
    if (this.handshakeFailed) return 'skipped: the handshake failed, nothing else can work';
    const failed = this.failedGroup;
    if (!failed || this.kit.options.keepGoing || failed.group === check.group) return undefined;
    return `skipped: the "${failed.group}" group failed ("${failed.name}"); fix that first, or run with --keep-going`;
  }
}
