import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { extractArchive, inspectArchive } from '../../engine/storage/tarball.js';
import { makeTar } from './tar-helpers.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tarball-stream-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The bytes as a stream: one byte first (gzip's magic split across chunks), then `size`-byte chunks. */
function chunked(bytes: Buffer, size: number): Readable {
  return Readable.from(
    (function* () {
      yield bytes.subarray(0, 1);
      for (let offset = 1; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size);
    })(),
  );
}

const ENTRIES = [
  { name: 'manifest.yaml', content: 'name: streamed\n' },
  { name: 'lib/data.bin', content: Buffer.alloc(300_000, 7) },
];

describe('archives stream from a file or a stream', () => {
  it('extracts from a file path and from a stream of small chunks, tar and tar.gz alike, hashing every byte on the way', async () => {
    for (const gzip of [false, true]) {
      const archive = await makeTar(ENTRIES, gzip);
      const file = join(root, `archive-${gzip}`);
      await writeFile(file, archive);
      for (const [label, source] of [['file', file], ['stream', chunked(archive, 1000)]] as const) {
        const dest = join(root, `dest-${gzip}-${label}`);
        const hash = createHash('sha256');
        const summary = await extractArchive(source, dest, undefined, { onChunk: (chunk) => hash.update(chunk) });
        expect(summary).toMatchObject({ compressed: gzip, files: 2 });
        expect(hash.digest('hex')).toBe(createHash('sha256').update(archive).digest('hex'));
        expect(await readFile(join(dest, 'manifest.yaml'), 'utf8')).toBe('name: streamed\n');
        expect((await readFile(join(dest, 'lib/data.bin'))).length).toBe(300_000);
      }
    }
  });

  it('inspects in one pass and keeps the files asked for, refusing one larger than allowed', async () => {
    const archive = await makeTar(ENTRIES, true);
    const summary = await inspectArchive(chunked(archive, 4096), undefined, { capture: ['./manifest.yaml', 'missing.yaml'] });
    expect(summary.paths).toEqual(['manifest.yaml', 'lib/data.bin']);
    expect([...summary.captured.keys()]).toEqual(['manifest.yaml']);
    expect(summary.captured.get('manifest.yaml')?.toString()).toBe('name: streamed\n');
    await expect(inspectArchive(archive, undefined, { capture: ['lib/data.bin'], captureMaxBytes: 1000 })).rejects.toMatchObject({
      code: 'unsafe_archive',
      field: 'lib/data.bin',
    });
  });

  it('a failing source is a storage_error, not a bad archive, and leaves no temp dir', async () => {
    const archive = await makeTar(ENTRIES);
    const broken = Readable.from(
      (async function* () {
        yield archive.subarray(0, 2048);
        throw new Error('stored chunk 2 is missing');
      })(),
    );
    const error = await extractArchive(broken, join(root, 'dest'), undefined).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'storage_error' });
    expect((error as Error).message).toMatch(/stored chunk 2 is missing/);
    expect(await readdir(root)).toEqual([]);
  });

  it('a beforeCommit check that throws discards the extracted tree', async () => {
    const archive = await makeTar(ENTRIES);
    const dest = join(root, 'dest');
    await expect(
      extractArchive(chunked(archive, 65536), dest, undefined, {
        beforeCommit: () => {
          throw new Error('digest mismatch');
        },
      }),
    ).rejects.toThrow(/digest mismatch/);
    expect(await readdir(root)).toEqual([]);
  });
});
