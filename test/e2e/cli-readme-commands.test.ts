import { spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_MAIN, ROOT, startEngine, tempDir, type RunningEngine } from '../helpers/engine.js';

/**
 * Every shell command of the READMEs runs as written (from a copy of the repository's examples,
 * with `cocaine-deploy` on the PATH as the top-level README sets it up), and prints what it says.
 */

/** The ```sh blocks of a README, without the lines that set up the tools (npm, alias). */
function shellBlocks(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) =>
    match[1]
      .split('\n')
      .filter((line) => !/^\s*(npm|alias)\s/.test(line))
      .join('\n'),
  );
}

function bash(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

/** What each README's commands must print (beyond exiting 0). */
const EXPECTED: Record<string, RegExp[]> = {
  'README.md': [/^hello/m, /state:\s+COMPLETED/],
  'examples/node-echo/README.md': [/hello/],
  'examples/perl-echo/README.md': [/hello/],
  'examples/python-echo/README.md': [/hello/],
  'examples/native-echo/README.md': [/hello/],
  'examples/node-stream/README.md': [/0\n1\n2\n3\n4\n/, /STREAMED IN/],
  'examples/python-stream/README.md': [/0\n1\n2\n3\n4\n/, /STREAMED IN/],
  'examples/perl-stream/README.md': [/0\n1\n2\n3\n4\n/, /STREAMED IN/],
  'examples/perl-wordcount/README.md': [/"words":\s*3/, /"lines":\s*[1-9]/],
  'examples/python-wordcount/README.md': [/"words":\s*3/, /"lines":\s*[1-9]/],
  'examples/node-slow/README.md': [/slept 100/, /exit 4/, /exit 3/, /ID\s+TIME\s+WORKER/],
  'examples/pipeline/README.md': [/^6 lines, 36 distinct words\n 1\. the +11$/m],
};

describe('README commands work as written', () => {
  let engine: RunningEngine;
  const home = tempDir('readme');
  const bin = join(home, 'bin');
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    engine = await startEngine();
    // A copy, so building native-echo writes nothing into the repository.
    cpSync(join(ROOT, 'examples'), join(home, 'examples'), { recursive: true });
    cpSync(join(ROOT, 'plugins/native/include'), join(home, 'plugins/native/include'), { recursive: true });
    mkdirSync(bin);
    writeFileSync(join(bin, 'cocaine-deploy'), `#!/bin/sh\nexec "${process.execPath}" "${CLI_MAIN}" "$@"\n`);
    chmodSync(join(bin, 'cocaine-deploy'), 0o755);
    env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, COCAINE_ENGINE: engine.address, NO_COLOR: '1' };
  });

  afterAll(async () => {
    await engine?.stop();
  });

  const readmes = [
    'README.md',
    ...readdirSync(join(ROOT, 'examples'))
      .filter((name) => !name.endsWith('-conformance'))
      .map((name) => `examples/${name}/README.md`),
  ];

  it('every README in scope has commands and an expectation here', () => {
    for (const readme of readmes) expect({ readme, expected: readme in EXPECTED }).toEqual({ readme, expected: true });
  });

  it.each(readmes)('%s', async (readme) => {
    const text = readFileSync(join(ROOT, readme), 'utf8');
    expect(text).not.toMatch(/cocaine-deploy call\b/);
    const blocks = shellBlocks(join(ROOT, readme));
    expect(blocks.length).toBeGreaterThan(0);
    let stdout = '';
    for (const block of blocks) {
      const result = await bash(block, home, env);
      expect({ block, code: result.code, stderr: result.stderr }).toMatchObject({ block, code: 0 });
      stdout += result.stdout;
    }
    for (const expected of EXPECTED[readme] ?? []) expect(stdout).toMatch(expected);
  }, 120_000);
});
