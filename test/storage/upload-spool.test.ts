import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UploadSpool } from '../../engine/storage/upload-spool.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'upload-spool-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('UploadSpool', () => {
  it('writes chunks to a file, hashing on the way; discard removes it and frees the budget', async () => {
    const spool = await UploadSpool.open({ dir, maxConcurrentBytes: 4096 });
    const upload = spool.begin(3000);
    expect(spool.reservedBytes).toBe(3000);
    const parts = [Buffer.alloc(1000, 1), Buffer.alloc(2000, 2)];
    for (const part of parts) await upload.write(part);
    const file = await upload.finish();
    const bytes = Buffer.concat(parts);
    expect(file).toEqual({ path: upload.path, size: 3000, sha256: createHash('sha256').update(bytes).digest('hex') });
    expect((await readFile(file.path)).equals(bytes)).toBe(true);
    await upload.discard();
    await upload.discard();
    expect(await readdir(dir)).toEqual([]);
    expect(spool.reservedBytes).toBe(0);
    expect(spool.uploadsInProgress).toBe(0);
  });

  it('refuses an upload past the budget with queue_full naming the limit; the others keep theirs', async () => {
    const spool = await UploadSpool.open({ dir, maxConcurrentBytes: 4096 });
    const first = spool.begin(3000);
    expect(() => spool.begin(2000)).toThrow(expect.objectContaining({ code: 'queue_full', message: expect.stringMatching(/4096-byte limit on concurrent uploads \(max-concurrent-upload-bytes\)/) }));
    expect(spool.reservedBytes).toBe(3000);
    // Unknown size: reserved as the bytes arrive, and cut off at the budget.
    const undeclared = spool.begin(0);
    await undeclared.write(Buffer.alloc(1000));
    await expect(undeclared.write(Buffer.alloc(200))).rejects.toMatchObject({ code: 'queue_full' });
    // Sending more than declared reserves more too.
    await undeclared.discard();
    await first.write(Buffer.alloc(3000));
    await first.write(Buffer.alloc(1000));
    expect(spool.reservedBytes).toBe(4000);
    await first.discard();
    expect(spool.reservedBytes).toBe(0);
    const later = spool.begin(4096);
    await later.discard();
    // One that could never fit says so rather than "retry".
    expect(() => spool.begin(5000)).toThrow(expect.objectContaining({ code: 'queue_full', message: expect.stringMatching(/on its own: raise the limit/) }));
    expect(await readdir(dir)).toEqual([]);
  });

  it('removes uploads a crashed engine left behind, and nothing else', async () => {
    await writeFile(join(dir, '0123456789abcdef01234567.upload'), 'stale');
    await writeFile(join(dir, 'keep.txt'), 'not ours');
    await UploadSpool.open({ dir, maxConcurrentBytes: 4096 });
    expect(await readdir(dir)).toEqual(['keep.txt']);
  });

  it('refuses a budget below 1 KiB naming the option', async () => {
    await expect(UploadSpool.open({ dir, maxConcurrentBytes: 10 })).rejects.toMatchObject({ code: 'invalid_argument', field: 'maxConcurrentUploadBytes' });
  });
});
