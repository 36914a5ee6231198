import { mkdtemp, mkdir, readdir, readFile, readlink, rm, stat, lstat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EngineError, InvalidInputError } from '../../engine/errors/index.js';
import { extractArchive, inspectArchive, readFileFromArchive, resolveArchiveLimits, type ArchiveLimits } from '../../engine/storage/tarball.js';
import { makeTar, type TestEntry } from './tar-helpers.js';

let root: string;
let sentinel: string;
let work: string;
let dest: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tarball-test-'));
  // work/dest is where archives go; sentinel/ sits where `../..` escapes would land.
  sentinel = join(root, 'sentinel');
  work = join(root, 'work');
  dest = join(work, 'dest');
  await mkdir(sentinel);
  await mkdir(work);
  await writeFile(join(sentinel, 'keep'), 'untouched');
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function expectRefused(entries: TestEntry[], entryName: string, reason: RegExp, limits?: Partial<ArchiveLimits>): Promise<void> {
  for (const gzip of [false, true]) {
    const archive = await makeTar(entries, gzip);
    for (const run of [() => inspectArchive(archive, limits), () => extractArchive(archive, dest, limits)]) {
      const error = await run().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, `${entryName} (gzip=${gzip}) was not refused`).toBeInstanceOf(InvalidInputError);
      expect((error as InvalidInputError).code).toBe('unsafe_archive');
      expect((error as InvalidInputError).message).toContain(`archive entry ${JSON.stringify(entryName)} refused`);
      expect((error as InvalidInputError).message).toMatch(reason);
      expect((error as InvalidInputError).field).toBe(entryName);
    }
    // Nothing outside: the sentinel is as it was, the work dir holds no dest and no temp dir.
    expect(await readdir(sentinel)).toEqual(['keep']);
    expect(await readFile(join(sentinel, 'keep'), 'utf8')).toBe('untouched');
    expect(await readdir(work)).toEqual([]);
    expect(await readdir(root)).toEqual(['sentinel', 'work']);
  }
}

describe('refusing unsafe archives', () => {
  it('absolute path', async () => {
    await expectRefused([{ name: 'ok.txt', content: 'x' }, { name: `${sentinel}/abs`, content: 'pwned' }], `${sentinel}/abs`, /absolute path/);
  });

  it('../x', async () => {
    await expectRefused([{ name: '../../sentinel/x', content: 'pwned' }], '../../sentinel/x', /'\.\.' segment/);
  });

  it('a/../../x', async () => {
    await expectRefused([{ name: 'a/', type: 'directory' }, { name: 'a/../../x', content: 'pwned' }], 'a/../../x', /'\.\.' segment/);
  });

  it('symlink to /etc', async () => {
    await expectRefused([{ name: 'etc', type: 'symlink', linkname: '/etc' }], 'etc', /is absolute/);
  });

  it('symlink escaping through ..', async () => {
    await expectRefused([{ name: 'sub/', type: 'directory' }, { name: 'sub/up', type: 'symlink', linkname: '../../../sentinel' }], 'sub/up', /resolves outside the archive root/);
  });

  it('symlink escaping through a chain of in-tree symlinks', async () => {
    await expectRefused(
      [
        { name: 'sub/', type: 'directory' },
        { name: 's1', type: 'symlink', linkname: 'sub' },
        { name: 'sub/s2', type: 'symlink', linkname: '..' },
        { name: 's3', type: 'symlink', linkname: 's1/s2/..' },
      ],
      's3',
      /resolves outside the archive root/,
    );
  });

  it('symlink made to escape by a later symlink', async () => {
    await expectRefused(
      [
        { name: 'd/', type: 'directory' },
        { name: 'x', type: 'symlink', linkname: 'd/y/..' },
        { name: 'd/y', type: 'symlink', linkname: '..' },
      ],
      'x',
      /resolves outside the archive root/,
    );
  });

  it('file written through a symlinked dir', async () => {
    await expectRefused(
      [
        { name: 'real/', type: 'directory' },
        { name: 'link', type: 'symlink', linkname: 'real' },
        { name: 'link/file.txt', content: 'through the link' },
      ],
      'link/file.txt',
      /passes through the symlink "link"/,
    );
  });

  it('file replacing a symlink', async () => {
    await expectRefused(
      [
        { name: 'target.txt', content: 'a' },
        { name: 'x', type: 'symlink', linkname: 'target.txt' },
        { name: 'x', content: 'overwrite through the link' },
      ],
      'x',
      /replaces an earlier symlink/,
    );
  });

  it('symlink replacing a directory that already has content', async () => {
    await expectRefused(
      [{ name: 'd/f', content: 'a' }, { name: 'd', type: 'symlink', linkname: '.' }],
      'd',
      /replaces an earlier directory/,
    );
  });

  it('hard link to /etc/passwd', async () => {
    await expectRefused([{ name: 'passwd', type: 'link', linkname: '/etc/passwd' }], 'passwd', /hard link target "\/etc\/passwd" is absolute/);
  });

  it('hard link outside through ..', async () => {
    await expectRefused([{ name: 'p', type: 'link', linkname: '../../sentinel/keep' }], 'p', /'\.\.' segment/);
  });

  it('hard link to a symlink or a directory', async () => {
    await expectRefused(
      [{ name: 'l', type: 'symlink', linkname: 'nowhere' }, { name: 'h', type: 'link', linkname: 'l' }],
      'h',
      /not an earlier regular file/,
    );
    await expectRefused([{ name: 'dir/', type: 'directory' }, { name: 'h', type: 'link', linkname: 'dir' }], 'h', /not an earlier regular file/);
  });

  it('fifo and device entries', async () => {
    await expectRefused([{ name: 'ok', content: 'x' }, { name: 'pipe', type: 'fifo' }], 'pipe', /type fifo/);
    await expectRefused([{ name: 'null', type: 'character-device' }], 'null', /type character-device/);
    await expectRefused([{ name: 'sda', type: 'block-device' }], 'sda', /type block-device/);
  });

  it('too many files', async () => {
    const entries = Array.from({ length: 6 }, (_, i) => ({ name: `f${i}`, content: 'x' }));
    await expectRefused(entries, 'f5', /more than 5 entries/, { maxFiles: 5 });
  });

  it('too large in total and per file', async () => {
    const entries = [
      { name: 'a', content: Buffer.alloc(600) },
      { name: 'b', content: Buffer.alloc(600) },
    ];
    await expectRefused(entries, 'b', /exceeds 1000 bytes/, { maxBytes: 1000 });
    await expectRefused(entries, 'a', /600 bytes, more than the 500 allowed/, { maxFileBytes: 500 });
  });

  it('stops a gzip bomb early', async () => {
    const archive = await makeTar([{ name: 'zeros', content: Buffer.alloc(64 * 1024 * 1024) }], true);
    expect(archive.length).toBeLessThan(200_000);
    const started = performance.now();
    await expect(extractArchive(archive, dest, { maxBytes: 1024 * 1024 })).rejects.toMatchObject({ code: 'unsafe_archive' });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await readdir(work)).toEqual([]);
  });

  it('refuses bad limits and garbage input', async () => {
    expect(() => resolveArchiveLimits({ maxFiles: 0 })).toThrow(/"maxFiles" must be an integer >= 1/);
    await expect(inspectArchive(Buffer.from('this is not a tar archive at all'.repeat(40)))).rejects.toMatchObject({ code: 'invalid_argument' });
    await expect(extractArchive(Buffer.from([0x1f, 0x8b, 1, 2, 3, 4]), dest)).rejects.toMatchObject({ code: 'invalid_argument' });
    expect(await readdir(work)).toEqual([]);
  });
});

describe('extracting good archives', () => {
  const good: TestEntry[] = [
    { name: './', type: 'directory', mode: 0o755 },
    { name: './bin/', type: 'directory', mode: 0o755 },
    { name: './bin/run.sh', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
    { name: './lib/deep/nested/', type: 'directory', mode: 0o750 },
    { name: './lib/deep/nested/data.txt', content: 'payload', mode: 0o640 },
    { name: 'lib/implicit/dir/file.txt', content: 'no dir entries before me' },
    { name: 'current', type: 'symlink', linkname: 'lib/deep/nested' },
    { name: 'lib/deep/up', type: 'symlink', linkname: '../../bin/run.sh' },
    { name: 'copy.txt', type: 'link', linkname: './lib/deep/nested/data.txt' },
    { name: 'manifest.yaml', content: 'name: good\n' },
  ];

  it.each([false, true])('extracts modes, nested dirs, symlinks and hard links (gzip=%s)', async (gzip) => {
    const archive = await makeTar(good, gzip);
    const summary = await extractArchive(archive, dest);
    expect(summary).toMatchObject({ entries: 9, files: 4, directories: 2, symlinks: 2, hardlinks: 1, compressed: gzip });
    expect(summary.bytes).toBe('#!/bin/sh\necho hi\n'.length + 'payload'.length + 'no dir entries before me'.length + 'name: good\n'.length);
    expect(summary.paths).toContain('bin/run.sh');
    expect(summary.paths).toContain('manifest.yaml');

    expect((await stat(join(dest, 'bin/run.sh'))).mode & 0o777).toBe(0o755);
    expect((await stat(join(dest, 'lib/deep/nested/data.txt'))).mode & 0o777).toBe(0o640);
    expect((await stat(join(dest, 'lib/deep/nested'))).mode & 0o777).toBe(0o750);
    expect(await readFile(join(dest, 'lib/implicit/dir/file.txt'), 'utf8')).toBe('no dir entries before me');
    expect(await readlink(join(dest, 'current'))).toBe('lib/deep/nested');
    expect(await readFile(join(dest, 'current/data.txt'), 'utf8')).toBe('payload');
    expect(await readFile(join(dest, 'lib/deep/up'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect((await lstat(join(dest, 'copy.txt'))).ino).toBe((await lstat(join(dest, 'lib/deep/nested/data.txt'))).ino);
    expect(await readdir(work)).toEqual(['dest']);
  });

  it('a repeated file entry replaces the file, not the inode it was hard-linked to', async () => {
    const archive = await makeTar([
      { name: 'a.txt', content: 'original' },
      { name: 'b.txt', type: 'link', linkname: 'a.txt' },
      { name: 'b.txt', content: 'replacement' },
      { name: 'a.txt', content: 'second a' },
    ]);
    await extractArchive(archive, dest);
    expect(await readFile(join(dest, 'a.txt'), 'utf8')).toBe('second a');
    expect(await readFile(join(dest, 'b.txt'), 'utf8')).toBe('replacement');
  });

  it('inspects without writing', async () => {
    const summary = await inspectArchive(await makeTar(good));
    expect(summary.files).toBe(4);
    expect(await readdir(work)).toEqual([]);
  });

  it('reports a file-system failure as storage_error and cleans up', async () => {
    // A file name longer than NAME_MAX makes open() fail with ENAMETOOLONG after earlier entries were written.
    const archive = await makeTar([{ name: 'ok.txt', content: 'fine' }, { name: 'x'.repeat(300), content: 'too long a name' }]);
    const error = await extractArchive(archive, dest).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).code).toBe('storage_error');
    expect(await readdir(work)).toEqual([]);
  });

  it('refuses to extract over an existing directory', async () => {
    await mkdir(dest);
    const error = await extractArchive(await makeTar(good), dest).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).code).toBe('storage_error');
    expect(await readdir(work)).toEqual(['dest']);
    expect(await readdir(dest)).toEqual([]);
  });

  it('reads one file from an archive', async () => {
    for (const gzip of [false, true]) {
      const archive = await makeTar(good, gzip);
      expect((await readFileFromArchive(archive, 'manifest.yaml'))?.toString()).toBe('name: good\n');
      expect((await readFileFromArchive(archive, './lib/deep/nested/data.txt'))?.toString()).toBe('payload');
      expect(await readFileFromArchive(archive, 'missing.yaml')).toBeUndefined();
      expect(await readFileFromArchive(archive, 'current')).toBeUndefined();
    }
  });
});
