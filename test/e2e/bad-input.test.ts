import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, cli, cliJson, startEngine, tempDir, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';

async function tarball(entries: Array<{ name: string; content?: string; type?: 'file' | 'symlink'; linkname?: string }>): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve) => archive.on('end', () => resolve()));
  for (const entry of entries) {
    if (entry.type === 'symlink') archive.entry({ name: entry.name, type: 'symlink', linkname: entry.linkname });
    else archive.entry({ name: entry.name }, entry.content ?? '');
  }
  archive.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks));
}

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  return lines[0];
}

describe('bad input gets a clear error and loses nothing', () => {
  let engine: RunningEngine;
  let rpc: Rpc;
  const work = tempDir('bad-input');

  beforeAll(async () => {
    engine = await startEngine();
    rpc = connectRpc(engine.address);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-echo')]);
  });

  afterAll(async () => {
    rpc?.close();
    await engine?.stop();
  });

  it('a malformed manifest names the bad field', async () => {
    const dir = join(work, 'bad-manifest');
    mkdirSync(dir);
    writeFileSync(join(dir, 'index.js'), 'export const echo = (r) => r.body();');
    writeFileSync(join(dir, 'manifest.yaml'), 'name: bad\nplugin: node\nentrypoint: index.js\nenviroment: {}\n');
    const result = await cli(engine, ['app', 'upload', dir]);
    expect(result.code).not.toBe(0);
    expect(oneLine(result.stderr)).toMatch(/enviroment/);
    writeFileSync(join(dir, 'manifest.yaml'), 'name: bad\nentrypoint: index.js\n');
    const missing = await cli(engine, ['app', 'upload', dir]);
    expect(missing.stderr).toMatch(/plugin/);
  });

  it('an unknown plugin or missing entrypoint is refused', async () => {
    const dir = join(work, 'bad-plugin');
    mkdirSync(dir);
    writeFileSync(join(dir, 'manifest.yaml'), 'name: badplugin\nplugin: cobol\nentrypoint: main.cob\n');
    writeFileSync(join(dir, 'main.cob'), '');
    expect((await cli(engine, ['app', 'upload', dir])).stderr).toMatch(/cobol/);
    writeFileSync(join(dir, 'manifest.yaml'), 'name: badentry\nplugin: node\nentrypoint: missing.js\n');
    expect((await cli(engine, ['app', 'upload', dir])).stderr).toMatch(/entrypoint/);
  });

  it('a malformed profile names the bad field', async () => {
    const file = join(work, 'bad-profile.yaml');
    writeFileSync(file, 'pool-limit: 0\nheartbeat-timeout: -1\n');
    const result = await cli(engine, ['profile', 'upload', 'broken', file]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/pool-limit/);
    expect(result.stderr).toMatch(/heartbeat-timeout/);
  });

  it.each([
    ['a .. path', [{ name: '../escaped.txt', content: 'x' }]],
    ['an absolute path', [{ name: '/tmp/cocaine-absolute-escape.txt', content: 'x' }]],
    ['an escaping symlink', [{ name: 'link', type: 'symlink' as const, linkname: '../../../../etc' }, { name: 'link/passwd-copy', content: 'x' }]],
  ])('a tarball with %s is refused and nothing is written outside', async (_what, entries) => {
    const archive = await tarball([
      { name: 'manifest.yaml', content: 'name: evil\nplugin: node\nentrypoint: index.js\n' },
      { name: 'index.js', content: 'export const echo = () => "x";' },
      ...entries,
    ]);
    const file = join(work, `evil-${Math.random().toString(36).slice(2)}.tar.gz`);
    writeFileSync(file, archive);
    const result = await cli(engine, ['app', 'upload', file]);
    expect(result.code).not.toBe(0);
    expect(oneLine(result.stderr)).toMatch(/refused|unsafe|outside|absolute|\.\./i);
    expect(existsSync('/tmp/cocaine-absolute-escape.txt')).toBe(false);
    expect(existsSync(join(engine.dataDir, '..', 'escaped.txt'))).toBe(false);
    const apps = await cliJson<Array<{ name: string }>>(engine, ['app', 'list']);
    expect(apps.map((app) => app.name)).not.toContain('evil');
  });

  it('malformed targets and unknown apps get INVALID_ARGUMENT and NOT_FOUND', async () => {
    expect((await rpc.call('no-at-sign', '')).error?.status).toBe(3);
    expect((await rpc.call('@event', '')).error?.status).toBe(3);
    expect((await rpc.call('ghost@echo', '')).error?.status).toBe(5);
    const viaCli = await cli(engine, ['invoke', 'ghost@echo', '--data', 'x']);
    expect(viaCli.code).not.toBe(0);
    expect(oneLine(viaCli.stderr)).toMatch(/ghost/);
  });

  it('overload answers RESOURCE_EXHAUSTED at once, and a deadline DEADLINE_EXCEEDED', async () => {
    const profile = join(work, 'tiny.yaml');
    writeFileSync(profile, 'pool-limit: 1\nconcurrency: 1\nqueue-limit: 2\n');
    await cliJson(engine, ['profile', 'upload', 'tiny', profile]);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-slow'), '--profile', 'tiny']);
    await rpc.call('node-slow@pid');
    const calls = Array.from({ length: 6 }, () => rpc.call('node-slow@sleep', '400'));
    const results = await Promise.all(calls);
    const exhausted = results.filter((result) => result.error?.status === 8);
    expect(exhausted.length).toBe(3);
    for (const result of exhausted) expect(result.ms).toBeLessThan(200);
    const late = await rpc.call('node-slow@sleep', '3000', { timeoutMs: 200 });
    expect(late.error?.status).toBe(4);
  });
});
