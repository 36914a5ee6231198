import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { INTERRUPTED_ERROR, LocalQueue } from '../../engine/queue/local.js';
import type { QueuedEvent } from '../../engine/queue/types.js';
import { REPO, compileModule } from '../helpers/compile-module.js';

const CHILD = join(REPO, 'test/fixtures/queue-child.mjs');

let modulePath: string;
let outDir: string;
let dir: string;
let queue: LocalQueue | undefined;

beforeAll(async () => {
  ({ modulePath, outDir } = await compileModule('engine/queue/local.ts'));
});

afterAll(async () => {
  await rm(outDir, { recursive: true, force: true });
});

afterEach(async () => {
  await queue?.close();
  queue = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** Starts the child and collects its stdout lines; `until` resolves when a line matches. */
function startChild(mode: string, count: number): { child: ChildProcess; lines: string[]; until(test: (lines: string[]) => boolean): Promise<void>; exited: Promise<NodeJS.Signals | number | null> } {
  const child = spawn(process.execPath, [CHILD, modulePath, dir, mode, String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: { test: (lines: string[]) => boolean; resolve: () => void }[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const waiter of waiters.splice(0)) {
      if (waiter.test(lines)) waiter.resolve();
      else waiters.push(waiter);
    }
  });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  const until = (test: (lines: string[]) => boolean) =>
    new Promise<void>((resolve, reject) => {
      if (test(lines)) return resolve();
      waiters.push({ test, resolve });
      void exited.then((how) => reject(new Error(`child exited (${how}) before the expected output; stderr: ${stderr}`)));
    });
  return { child, lines, until, exited };
}

describe('LocalQueue durability across a SIGKILL', () => {
  it('loses no event whose enqueue was acknowledged', async () => {
    dir = await mkdtemp(join(tmpdir(), 'queue-kill-'));
    const N = 2000;
    const run = startChild('enqueue', N);
    await run.until((lines) => lines.filter((l) => l.startsWith('ack ')).length >= 300);
    run.child.kill('SIGKILL');
    expect(await run.exited).toBe('SIGKILL');
    const acked = run.lines.filter((l) => l.startsWith('ack ')).map((l) => l.slice(4));
    expect(acked.length).toBeGreaterThanOrEqual(300);
    expect(acked.length).toBeLessThan(N);
    expect(run.lines).not.toContain('finished');

    queue = await LocalQueue.open({ dir });
    const missing: string[] = [];
    for (const id of acked) {
      const status = await queue.status(id);
      if (status?.state !== 'PENDING' || status.app !== 'durable') missing.push(id);
    }
    expect(missing).toEqual([]);
    const depth = await queue.depth('durable');
    expect(depth).toBeGreaterThanOrEqual(acked.length);
    expect(depth).toBeLessThanOrEqual(N);

    // Everything that survived is whole and delivered in order of enqueue.
    const seen: QueuedEvent[] = [];
    const subscription = queue.subscribe('durable', async (event) => {
      seen.push(event);
      return { kind: 'completed', result: Buffer.alloc(0) };
    }, { concurrency: 1 });
    const deadline = Date.now() + 10_000;
    while (seen.length < depth && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await subscription.close();
    expect(seen).toHaveLength(depth);
    const indexes = seen.map((e) => Number(e.headers.i));
    for (const event of seen) expect(event.data.toString()).toBe(`payload-${event.headers.i}`);
    expect(new Set(indexes).size).toBe(depth);
    const ackedSet = new Set(acked);
    expect(seen.filter((e) => ackedSet.has(e.id))).toHaveLength(acked.length);
  });

  it('redelivers events that were PROCESSING when the process died, counting the interrupted attempt', async () => {
    dir = await mkdtemp(join(tmpdir(), 'queue-kill-'));
    const run = startChild('process', 10);
    await run.until((lines) => lines.filter((l) => l.startsWith('processing ')).length >= 4);
    run.child.kill('SIGKILL');
    expect(await run.exited).toBe('SIGKILL');
    const queued = run.lines.filter((l) => l.startsWith('queued ')).map((l) => l.slice(7));
    const processing = run.lines.filter((l) => l.startsWith('processing ')).map((l) => l.split(' ')[1]!);
    expect(queued).toHaveLength(10);
    expect(processing).toEqual(queued.slice(0, 4));

    queue = await LocalQueue.open({ dir, retryBaseDelayMs: 10, retryMaxDelayMs: 50 });
    // The first event had a single attempt, and the crash used it up.
    expect(await queue.status(queued[0]!)).toMatchObject({ state: 'FAILED', attempts: 1, lastError: INTERRUPTED_ERROR });
    expect((await queue.deadLetters('crashy')).map((s) => s.id)).toEqual([queued[0]]);
    for (const id of queued.slice(1, 4)) {
      expect(await queue.status(id)).toMatchObject({ state: 'PENDING', attempts: 1, lastError: INTERRUPTED_ERROR });
    }
    for (const id of queued.slice(4)) expect(await queue.status(id)).toMatchObject({ state: 'PENDING', attempts: 0 });
    expect(await queue.depth('crashy')).toBe(9);

    const attempts = new Map<string, number>();
    const subscription = queue.subscribe('crashy', async (event) => {
      attempts.set(event.id, event.attempt);
      return { kind: 'completed', result: Buffer.from('ok') };
    }, { concurrency: 4 });
    const deadline = Date.now() + 10_000;
    while (attempts.size < 9 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await subscription.close();
    expect([...attempts.keys()].sort()).toEqual(queued.slice(1).sort());
    for (const id of queued.slice(1, 4)) expect(attempts.get(id)).toBe(2);
    for (const id of queued.slice(4)) expect(attempts.get(id)).toBe(1);
    for (const id of queued.slice(1)) expect((await queue.status(id))!.state).toBe('COMPLETED');
  });
});
