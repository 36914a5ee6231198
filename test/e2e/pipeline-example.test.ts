/**
 * examples/pipeline/README.md runs as written against a fresh engine: the Node `split` app emits
 * one `count@add` per line, the Python `count` app counts words in its storage with
 * compare-and-set, the Perl `report` app calls `count@top` and streams the summary. The summary's
 * counts must be those of the sample text, and exactly what the README says it prints.
 */
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_MAIN, ROOT, startEngine, tempDir, waitFor, type RunningEngine } from '../helpers/engine.js';
import { connectRpc } from '../helpers/rpc.js';

const README = join(ROOT, 'examples/pipeline/README.md');

/** The README's ```sh blocks, without the lines that start the engine or set up the tools (npm, alias). */
function shellBlocks(text: string): string[] {
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)]
    .map((match) =>
      match[1]
        .split('\n')
        .filter((line) => !/^\s*(npm|alias)\s/.test(line))
        .join('\n')
        .trim(),
    )
    .filter(Boolean);
}

function bash(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** The summary the pipeline must print for a text: counted here the way the count app counts. */
function expectedSummary(text: string, limit: number): string {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  const counts = new Map<string, number>();
  for (const word of text.toLowerCase().match(/[a-z0-9']+/g) ?? []) counts.set(word, (counts.get(word) ?? 0) + 1);
  const top = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, limit);
  const rows = top.map(([word, count], i) => `${String(i + 1).padStart(2)}. ${word.padEnd(12)} ${count}\n`);
  return `${lines.length} lines, ${counts.size} distinct words\n${rows.join('')}`;
}

describe('examples/pipeline: split (Node) → count (Python) → report (Perl)', () => {
  let engine: RunningEngine;
  const home = tempDir('pipeline');
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    engine = await startEngine();
    cpSync(join(ROOT, 'examples/pipeline'), join(home, 'examples/pipeline'), { recursive: true });
    const bin = join(home, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'cocaine-deploy'), `#!/bin/sh\nexec "${process.execPath}" "${CLI_MAIN}" "$@"\n`);
    chmodSync(join(bin, 'cocaine-deploy'), 0o755);
    env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, COCAINE_ENGINE: engine.address, NO_COLOR: '1' };
  }, 60_000);

  afterAll(async () => {
    await engine?.stop();
  });

  it("the README's commands print the sample text's word counts, as the README shows them", async () => {
    const readme = readFileSync(README, 'utf8');
    const blocks = shellBlocks(readme);
    expect(blocks.length, 'the README has the commands to run').toBe(1);
    const started = Date.now();
    const result = await bash(blocks[0], home, env);
    const ms = Date.now() - started;
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    const summary = expectedSummary(readFileSync(join(ROOT, 'examples/pipeline/sample.txt'), 'utf8'), 5);
    // Before the summary: the upload lines.
    expect(result.stdout.slice(-summary.length), result.stdout).toBe(summary);
    // The output the README shows is the real one.
    expect(readme).toContain(`\`\`\`\n${summary}\`\`\``);
    console.log(`examples/pipeline README commands: ${ms} ms`);
    // "It takes a few seconds": a generous bound that catches a hang, not a slow machine.
    expect(ms).toBeLessThan(60_000);
  }, 120_000);

  // After the README's commands uploaded the apps.
  it("count's compare-and-set loop loses no increment when 40 lines of one word are counted at once", async () => {
    const rpc = connectRpc(engine.address);
    try {
      const ids = await Promise.all(Array.from({ length: 40 }, () => rpc.enqueue('count@add', 'contention contention').then((event) => event.id)));
      for (const id of ids) {
        const status = await waitFor(`event ${id} to finish`, async () => {
          const current = await rpc.status(id);
          return current.state === 'COMPLETED' || current.state === 'FAILED' ? current : undefined;
        }, 60_000);
        expect(status.state, status.lastError).toBe('COMPLETED');
      }
      const top = await rpc.call('count@top', '1', { timeoutMs: 30_000 });
      expect(top.error?.message).toBeUndefined();
      expect(JSON.parse(top.body.toString())).toMatchObject({ top: [['contention', 80]] });
    } finally {
      rpc.close();
    }
  }, 120_000);
});
