import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_MAIN, EXAMPLES, cli, cliJson, startEngine, tempDir, type RunningEngine } from '../helpers/engine.js';
import { runOnPty } from './pty.js';

/** Newcomer friction (issue 10, "CLI"), through the real CLI against a real engine. */
describe('cocaine-deploy answers mistakes clearly', () => {
  let engine: RunningEngine;
  const work = tempDir('cli-friction');

  beforeAll(async () => {
    engine = await startEngine();
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-echo')]);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-stream')]);
  });

  afterAll(async () => {
    await engine?.stop();
  });

  it('commands on an app that does not exist exit 2 with "no app named"', async () => {
    for (const args of [
      ['app', 'logs', 'nosuch'],
      ['runlist', 'remove', 'nosuch'],
      ['crashlog', 'remove', 'nosuch'],
      ['crashlog', 'list', 'nosuch'],
      ['dead-letters', 'nosuch'],
    ]) {
      const result = await cli(engine, args);
      expect({ args, code: result.code, stdout: result.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(result.stderr).toBe('cocaine-deploy: no app named "nosuch"\n');
    }
    // The same commands on an app that exists still succeed (empty answers are fine there).
    for (const args of [['app', 'logs', 'node-echo'], ['crashlog', 'list', 'node-echo'], ['dead-letters', 'node-echo'], ['crashlog', 'remove', 'node-echo']]) {
      expect({ args, code: (await cli(engine, args)).code }).toEqual({ args, code: 0 });
    }
    const removed = await cliJson<Record<string, string>>(engine, ['runlist', 'remove', 'node-stream']);
    expect(removed).not.toHaveProperty('node-stream');
    await cliJson(engine, ['runlist', 'add', 'node-stream', 'default']);
  });

  it('with --json, errors are one JSON object on stderr: code, message, field', async () => {
    const notFound = await cli(engine, ['--json', 'app', 'view', 'nosuch']);
    expect(notFound.code).toBe(2);
    expect(JSON.parse(notFound.stderr)).toEqual({ error: { code: 'app_not_found', message: 'no app named "nosuch"', field: null } });
    const usage = await cli(engine, ['app', 'bogus', '--json']);
    expect(usage.code).toBe(1);
    expect(JSON.parse(usage.stderr)).toMatchObject({ error: { code: 'invalid_argument', message: expect.stringMatching(/bogus/) } });
    const noManifest = join(work, 'json-no-manifest');
    mkdirSync(noManifest);
    const local = await cli(engine, ['--json', 'app', 'upload', noManifest]);
    expect(local.code).toBe(1);
    expect(JSON.parse(local.stderr)).toMatchObject({ error: { code: 'invalid_argument', field: 'manifest' } });
    const unreachable = await cli(undefined, ['--engine', '127.0.0.1:1', '--json', 'app', 'list']);
    expect(unreachable.code).toBe(3);
    expect(JSON.parse(unreachable.stderr)).toMatchObject({ error: { code: 'engine_unreachable', message: expect.stringMatching(/127\.0\.0\.1:1/) } });
  });

  it('several manifest problems are printed one per line', async () => {
    const dir = join(work, 'many-problems');
    mkdirSync(dir);
    writeFileSync(join(dir, 'index.js'), 'export const echo = (r) => r.body();');
    writeFileSync(join(dir, 'manifest.yaml'), 'name: many\nplugin: node\nentrypoint: index.js\nenviroment: {}\npool: 3\n');
    const result = await cli(engine, ['app', 'upload', dir]);
    expect(result.code).toBe(1);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines).toEqual([expect.stringMatching(/^cocaine-deploy: manifest\.yaml: .*"enviroment"/), expect.stringMatching(/^cocaine-deploy: manifest\.yaml: .*"pool"/)]);
    const json = await cli(engine, ['--json', 'app', 'upload', dir]);
    expect(JSON.parse(json.stderr).error.message.split('\n')).toHaveLength(2);
  });

  it('a manifest naming a plugin the engine lacks is not found (exit 2, as docs/cli.md says), naming the plugin', async () => {
    const dir = join(work, 'unknown-plugin');
    mkdirSync(dir);
    writeFileSync(join(dir, 'main.cob'), '');
    writeFileSync(join(dir, 'manifest.yaml'), 'name: cobol-app\nplugin: cobol\nentrypoint: main.cob\n');
    const result = await cli(engine, ['app', 'upload', dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^cocaine-deploy: .*unknown plugin "cobol"/);
  });

  it('subcommand --help shows the global options', async () => {
    for (const args of [['app', 'upload', '--help'], ['invoke', '--help'], ['status', '--help']]) {
      const help = await cli(undefined, args);
      expect(help.code).toBe(0);
      for (const option of ['--engine', '--json', '--timeout']) expect({ args, has: help.stdout.includes(option) }).toEqual({ args, has: true });
    }
  });

  it('profile list includes the implicit default profile', async () => {
    expect(await cliJson(engine, ['profile', 'list'])).toContain('default');
    const table = await cli(engine, ['profile', 'list']);
    expect(table.stdout).toMatch(/^default$/m);
  });

  it('a directory without a manifest, or an empty --manifest, is refused naming it', async () => {
    const dir = join(work, 'no-manifest');
    mkdirSync(dir);
    writeFileSync(join(dir, 'index.js'), '');
    const missing = await cli(engine, ['app', 'upload', dir]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`cocaine-deploy: no manifest in ${dir}: looked for manifest.yaml, manifest.yml, manifest.json (add one, or give --manifest FILE)\n`);
    const empty = join(work, 'empty-manifest.yaml');
    writeFileSync(empty, '\n');
    const refused = await cli(engine, ['app', 'upload', join(EXAMPLES, 'node-echo'), '--manifest', empty, '--name', 'never']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`^cocaine-deploy: --manifest ${empty} is empty`));
    expect((await cli(engine, ['app', 'view', 'never'])).code).toBe(2);
  });

  it('an archive of one top-level folder is uploaded from inside it; without a manifest it says files must be at the root', async () => {
    const tree = join(work, 'tarballs');
    mkdirSync(tree);
    cpSync(join(EXAMPLES, 'node-echo'), join(tree, 'echo-src'), { recursive: true });
    execFileSync('tar', ['czf', 'nested.tar.gz', 'echo-src'], { cwd: tree });
    const nested = await cli(engine, ['app', 'upload', join(tree, 'nested.tar.gz'), '--name', 'nested']);
    expect(nested.code).toBe(0);
    expect(nested.stderr).toMatch(/its files sit under "echo-src\/"/);
    expect((await cli(engine, ['invoke', 'nested@echo', '--data', 'from a folder'])).stdout).toBe('from a folder');
    mkdirSync(join(tree, 'nothing/lib'), { recursive: true });
    writeFileSync(join(tree, 'nothing/lib/index.js'), '');
    execFileSync('tar', ['czf', 'nothing.tar.gz', 'nothing'], { cwd: tree });
    const refused = await cli(engine, ['app', 'upload', join(tree, 'nothing.tar.gz')]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/no manifest at the root of .*nothing\.tar\.gz .*under "nothing\/".*Files must be at the archive's root/);
  });

  it('an invoke body too large for one message points to --stream, which carries it', async () => {
    const big = join(work, 'big.bin');
    writeFileSync(big, Buffer.alloc(100 * 1024 * 1024, 'a'));
    const unary = await cli(engine, ['invoke', 'node-stream@upper', '--file', big]);
    expect(unary.code).toBe(1);
    expect(unary.stderr).toMatch(/^cocaine-deploy: the request body \(100\.0 MiB\) is larger than one gRPC message may be .*send it with --stream/);
    const streamed = await cli(engine, ['invoke', 'node-stream@upper', '--stream', '--file', big]);
    expect(streamed.code).toBe(0);
    expect(streamed.stdoutBytes.length).toBe(100 * 1024 * 1024);
    expect(streamed.stdoutBytes.subarray(0, 4).toString()).toBe('AAAA');
  }, 180_000);

  it('invoke on a terminal without --data says it reads stdin', async () => {
    const result = await runOnPty([process.execPath, CLI_MAIN, '--engine', engine.address, 'invoke', 'node-stream@upper'], {
      waitFor: 'Ctrl-D',
      input: 'typed here\n',
      timeoutMs: 30_000,
    });
    expect(result.output).toMatch(/reading the body from stdin; Ctrl-D to end/);
    expect(result.output).toMatch(/TYPED HERE/);
    expect(result.code).toBe(0);
    const lines = await runOnPty([process.execPath, CLI_MAIN, '--engine', engine.address, '--json', 'enqueue', 'node-echo@echo', '--lines'], {
      waitFor: 'Ctrl-D',
      input: 'first\nsecond\n',
      timeoutMs: 30_000,
    });
    expect(lines.output).toMatch(/reading events, one per line, from stdin; Ctrl-D to end \(or give --file\)/);
    expect(lines.output.match(/"id":/g)).toHaveLength(2);
    expect(lines.code).toBe(0);
  });

  it('on a terminal, the upload progress bar names the app and status --wait shows the state while it waits', async () => {
    const dir = join(work, 'some-directory');
    cpSync(join(EXAMPLES, 'node-slow'), dir, { recursive: true });
    const upload = await runOnPty([process.execPath, CLI_MAIN, '--engine', engine.address, 'app', 'upload', dir]);
    expect(upload.code).toBe(0);
    expect(upload.output).toMatch(/uploading node-slow \[/);
    const id = (await cli(engine, ['enqueue', 'node-slow@sleep', '--data', '1500'])).stdout.trim();
    const wait = await runOnPty([process.execPath, CLI_MAIN, '--engine', engine.address, 'status', id, '--wait']);
    expect(wait.code).toBe(0);
    expect(wait.output).toMatch(new RegExp(`${id}: (PENDING|PROCESSING) \\(attempt \\d of 5\\)`));
    expect(wait.output).toMatch(/state:\s+COMPLETED/);
  });
});
