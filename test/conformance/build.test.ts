/**
 * `npm run conformance` must not rewrite dist/ under an engine running from the same checkout
 * (issue 9: it rebuilt in place and crashed one). scripts/conformance.mjs builds only when a
 * source is newer than its output, into a private directory, and moves changed files in by
 * rename; unchanged files keep their inode.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, cliJson, startEngine, type RunningEngine } from '../helpers/engine.js';

const SCRIPT = join(ROOT, 'scripts/conformance.mjs');

function buildOnly(): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [SCRIPT, '--build-only'], { cwd: ROOT, encoding: 'utf8' });
  return { status: result.status, stderr: result.stderr };
}

/** inode and mtime of every file under dist/. */
function snapshot(): Map<string, { ino: number; mtimeMs: number }> {
  const files = new Map<string, { ino: number; mtimeMs: number }>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else {
        const stat = statSync(path);
        files.set(path, { ino: stat.ino, mtimeMs: stat.mtimeMs });
      }
    }
  };
  walk(join(ROOT, 'dist'));
  return files;
}

describe('npm run conformance and dist/', () => {
  let engine: RunningEngine;

  beforeAll(async () => {
    expect(buildOnly().status).toBe(0);
    engine = await startEngine();
  });

  afterAll(async () => {
    await engine?.stop();
  });

  it('leaves an up-to-date dist/ untouched while an engine runs from it', async () => {
    const before = snapshot();
    const result = buildOnly();
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toContain('dist/ is up to date');
    expect(snapshot()).toEqual(before);
    await cliJson(engine, ['info']);
  });

  it('rebuilds when a source is newer than its output: changed files replaced by rename, unchanged ones kept', async () => {
    // A stale output (older than its source, same content) and an outdated one (other content).
    const stale = join(ROOT, 'dist/bench/report.js');
    const outdated = join(ROOT, 'dist/bench/cold-start.js');
    const fresh = readFileSync(outdated);
    // An hour before the older of the two sources (a long-lived checkout's sources may be hours old).
    const sourcesMs = Math.min(...['bench/report.ts', 'bench/cold-start.ts'].map((source) => statSync(join(ROOT, source)).mtimeMs));
    const past = new Date(sourcesMs - 3_600_000);
    writeFileSync(outdated, '// an older build\n');
    utimesSync(outdated, past, past);
    utimesSync(stale, past, past);
    const before = snapshot();

    const result = buildOnly();
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/dist\/ updated \(1 file\(s\) replaced\)/);

    const after = snapshot();
    expect(readFileSync(outdated).equals(fresh)).toBe(true);
    expect(after.get(outdated)!.ino).not.toBe(before.get(outdated)!.ino); // a new file renamed over the old one
    expect(after.get(stale)!.ino).toBe(before.get(stale)!.ino); // same content: not rewritten
    expect(after.get(stale)!.mtimeMs).toBeGreaterThan(past.getTime());
    for (const [path, stat] of before) if (path !== outdated && path !== stale) expect(after.get(path), path).toEqual(stat);
    expect(buildOnly().stderr).toContain('dist/ is up to date');
    await cliJson(engine, ['info']);
  }, 180_000);
});
