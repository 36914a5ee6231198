/**
 * The conformance kit: one suite every language plugin passes (docs/plugin-authors.md).
 * Groups, in order, each skipped once an earlier one failed:
 *   handshake   the runtime started directly: a valid HANDSHAKE (and the declared concurrency)
 *   lifecycle   exits 1 when the app cannot load, 0 after TERMINATE, on EOF: on its own
 *   protocol    not_found, unknown control frames, heartbeats in long handlers, cancellation,
 *               results over one 64 MiB frame, a slow reader
 *   engine      the conformance app through a real engine (gRPC, CLI, queue) in the isolate asked
 *   services    (protocol 2) the SERVICE frame and cancel propagation (the kit as engine), then
 *               call, emit, storage and log from handlers through the engine, next to a helper app;
 *               skipped, not failed, for a runtime that handshakes with protocol 1
 * Every check is one vitest test named for what it proves.
 */
import { afterAll, describe, it } from 'vitest';
import { KitRun, type Check, type CheckResult } from './check.js';
import { engineChecks } from './checks-engine.js';
import { runtimeChecks } from './checks-runtime.js';
import { servicesChecks } from './checks-services.js';
import type { ConformanceOptions } from './context.js';

export type { ConformanceOptions } from './context.js';
export type { CheckResult } from './check.js';

export const allChecks: Check[] = [...runtimeChecks, ...engineChecks, ...servicesChecks];

export function describeConformance(options: ConformanceOptions): void {
  const title = `conformance: ${options.plugin} plugin${options.isolate ? ` (${options.isolate.type} isolate)` : ''}`;
  describe(title, () => {
    const run = new KitRun(options, allChecks);
    afterAll(() => run.close(), 60_000);
    for (const check of allChecks) {
      it(`[${check.group}] ${check.name}`, async (context) => {
        const result = await run.run(check);
        if (result.status === 'skip') context.skip(result.message);
        if (result.status === 'fail') throw new Error(result.message);
      }, check.timeoutMs * (options.slow ?? 1) + 10_000);
    }
  });
}

/** Runs the whole kit outside vitest's test tree (the kit's own tests); results in order. */
export async function runKit(options: ConformanceOptions, checks: Check[] = allChecks): Promise<CheckResult[]> {
  const run = new KitRun(options, checks);
  const results: CheckResult[] = [];
  try {
    for (const check of checks) results.push(await run.run(check));
  } finally {
    await run.close();
  }
  return results;
}
