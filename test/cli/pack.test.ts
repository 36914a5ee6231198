import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import { packDirectory } from '../../deploy-cli/pack.js';

interface Unpacked {
  name: string;
  type: string;
  mode: number;
  linkname?: string | null;
  content?: string;
}

async function unpack(archive: Buffer): Promise<Unpacked[]> {
  const entries: Unpacked[] = [];
  const reader = extract();
  const done = new Promise<void>((resolve, reject) => {
    reader.on('finish', resolve);
    reader.on('error', reject);
  });
  reader.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: unknown) => {
      chunks.push(chunk as Buffer);
    });
    stream.on('end', () => {
      entries.push({
        name: header.name,
        type: header.type ?? 'file',
        mode: (header.mode ?? 0) & 0o777,
        ...(header.type === 'symlink' ? { linkname: header.linkname } : {}),
        ...(header.type === 'file' ? { content: Buffer.concat(chunks).toString() } : {}),
      });
      next();
    });
  });
  reader.end(gunzipSync(archive));
  await done;
  return entries;
}

describe('packDirectory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cocaine-pack-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  mkdirSync(join(dir, 'lib/deep'), { recursive: true });
  mkdirSync(join(dir, '.git/objects'), { recursive: true });
  writeFileSync(join(dir, '.git/HEAD'), 'ref: refs/heads/main\n');
  writeFileSync(join(dir, 'manifest.yaml'), 'plugin: node\n');
  writeFileSync(join(dir, 'run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(dir, 'run.sh'), 0o755);
  writeFileSync(join(dir, 'lib/deep/data.bin'), 'nested');
  chmodSync(join(dir, 'lib/deep/data.bin'), 0o600);
  symlinkSync('lib/deep/data.bin', join(dir, 'link'));
  writeFileSync(join(dir, 'b.txt'), 'b');
  writeFileSync(join(dir, 'a.txt'), 'a');
  // Explicit modes: the result must not depend on the umask.
  for (const file of ['a.txt', 'b.txt', 'manifest.yaml']) chmodSync(join(dir, file), 0o644);
  for (const sub of ['lib', 'lib/deep']) chmodSync(join(dir, sub), 0o755);

  it('keeps files, nested dirs, modes and symlinks in sorted order, skipping .git', async () => {
    const entries = await unpack(await packDirectory(dir));
    expect(entries).toEqual([
      { name: 'a.txt', type: 'file', mode: 0o644, content: 'a' },
      { name: 'b.txt', type: 'file', mode: 0o644, content: 'b' },
      { name: 'lib/', type: 'directory', mode: 0o755 },
      { name: 'lib/deep/', type: 'directory', mode: 0o755 },
      { name: 'lib/deep/data.bin', type: 'file', mode: 0o600, content: 'nested' },
      { name: 'link', type: 'symlink', mode: 0o777, linkname: 'lib/deep/data.bin' },
      { name: 'manifest.yaml', type: 'file', mode: 0o644, content: 'plugin: node\n' },
      { name: 'run.sh', type: 'file', mode: 0o755, content: '#!/bin/sh\necho hi\n' },
    ]);
  });

  it('is deterministic: the same tree packs to the same bytes', async () => {
    const first = await packDirectory(dir);
    await new Promise((resolve) => setTimeout(resolve, 20));
    writeFileSync(join(dir, 'a.txt'), 'a');
    expect((await packDirectory(dir)).equals(first)).toBe(true);
  });

  it('refuses a path that is not a directory, naming it', async () => {
    await expect(packDirectory(join(dir, 'a.txt'))).rejects.toThrow(/a\.txt is not a directory/);
    await expect(packDirectory(join(dir, 'missing'))).rejects.toThrow(/missing is not a directory/);
  });
});
