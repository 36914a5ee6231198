import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsStorage } from '../../engine/storage/fs.js';
import { ensureSpooled, removeSpool } from '../../engine/storage/spool.js';
import type { AppRecord } from '../../engine/storage/types.js';
import { makeRecord, putAppBytes } from '../contracts/storage.contract.js';
import { makeTar } from './tar-helpers.js';

/** The real FsStorage, counting archive reads. */
class CountingFsStorage extends FsStorage {
  reads = 0;
  override async openArchive(name: string): Promise<Readable> {
    this.reads++;
    return super.openArchive(name);
  }
}

let root: string;
let storage: CountingFsStorage;
let spoolRoot: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'spool-test-'));
  storage = new CountingFsStorage({ dataDir: join(root, 'data'), durable: false });
  spoolRoot = join(root, 'spool');
});

afterEach(async () => {
  await storage.close();
  await rm(root, { recursive: true, force: true });
});

async function upload(name: string, version: string): Promise<AppRecord> {
  const archive = await makeTar([
    { name: 'main.py', content: `print(${JSON.stringify(version)})\n`, mode: 0o755 },
    { name: 'lib/util.py', content: 'X = 1\n' },
  ], true);
  const record = makeRecord(name, archive);
  await putAppBytes(storage, record, archive);
  return record;
}

describe('ensureSpooled', () => {
  it('extracts once for concurrent callers and reuses the dir', async () => {
    const record = await upload('echo', 'v1');
    const dirs = await Promise.all(Array.from({ length: 8 }, () => ensureSpooled(storage, record, spoolRoot)));
    const expected = join(spoolRoot, 'echo', record.sha256);
    expect(new Set(dirs)).toEqual(new Set([expected]));
    expect(storage.reads).toBe(1);
    expect(await readFile(join(expected, 'main.py'), 'utf8')).toBe('print("v1")\n');
    expect((await stat(join(expected, 'main.py'))).mode & 0o111).not.toBe(0);
    expect(await ensureSpooled(storage, record, spoolRoot)).toBe(expected);
    expect(storage.reads).toBe(1);
    expect(await readdir(join(spoolRoot, 'echo'))).toEqual([record.sha256]);
  });

  it('removes older versions of the app only', async () => {
    const v1 = await upload('echo', 'v1');
    const other = await upload('other', 'o1');
    await ensureSpooled(storage, v1, spoolRoot);
    await ensureSpooled(storage, other, spoolRoot);
    const v2 = await upload('echo', 'v2');
    const dir = await ensureSpooled(storage, v2, spoolRoot);
    expect(await readFile(join(dir, 'main.py'), 'utf8')).toBe('print("v2")\n');
    expect(await readdir(join(spoolRoot, 'echo'))).toEqual([v2.sha256]);
    expect(await readdir(join(spoolRoot, 'other'))).toEqual([other.sha256]);
  });

  it('refuses an archive that does not match the record', async () => {
    const stored = await upload('echo', 'v1');
    const stale = { ...stored, sha256: createHash('sha256').update('something else').digest('hex') };
    await expect(ensureSpooled(storage, stale, spoolRoot)).rejects.toMatchObject({ code: 'storage_error' });
    await expect(ensureSpooled(storage, { ...stored, sha256: '../../x' }, spoolRoot)).rejects.toMatchObject({ code: 'storage_error' });
    await expect(ensureSpooled(storage, { ...stored, name: '../x' }, spoolRoot)).rejects.toMatchObject({ code: 'invalid_argument' });
  });

  it('passes unsafe archives up as unsafe_archive and leaves nothing', async () => {
    const archive = await makeTar([{ name: '../escape', content: 'x' }]);
    const record = makeRecord('bad', archive);
    await putAppBytes(storage, record, archive);
    await expect(ensureSpooled(storage, record, spoolRoot)).rejects.toMatchObject({ code: 'unsafe_archive' });
    expect(await readdir(join(spoolRoot, 'bad'))).toEqual([]);
    expect(await readdir(spoolRoot)).toEqual(['bad']);
  });

  it('removeSpool removes every version', async () => {
    const record = await upload('echo', 'v1');
    await ensureSpooled(storage, record, spoolRoot);
    await removeSpool(spoolRoot, 'echo');
    expect(await readdir(spoolRoot)).toEqual([]);
    await removeSpool(spoolRoot, 'echo');
  });
});
