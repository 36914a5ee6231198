import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InvalidInputError, OverloadError } from '../errors/index.js';
import type { ArchiveFile } from './types.js';

export interface UploadSpoolOptions {
  /** Where archives are written as they arrive; emptied when the spool opens (one engine per dir). */
  dir: string;
  /** Bytes all uploads in progress may hold together; an upload that would pass it is refused. */
  maxConcurrentBytes: number;
}

/** Spooled file names: `<random>.upload`. */
const UPLOAD_FILE = /^[0-9a-f]{24}\.upload$/;

/**
 * Uploads spooled to disk as they arrive, hashed on the way, under one budget of concurrent
 * bytes: an upload reserves its declared size at the start (and more if it sends more), and
 * gives it back when it is finished or discarded. The engine's memory holds one chunk per upload.
 */
export class UploadSpool {
  readonly dir: string;
  readonly maxConcurrentBytes: number;
  private reserved = 0;
  private readonly active = new Set<SpooledUpload>();

  private constructor(options: UploadSpoolOptions) {
    if (typeof options?.dir !== 'string' || options.dir.trim() === '') {
      throw new InvalidInputError('invalid_argument', `upload spool option "dir" must be a non-empty path (got ${JSON.stringify(options?.dir)})`, { field: 'dir' });
    }
    const max = options.maxConcurrentBytes;
    if (!Number.isSafeInteger(max) || max < 1024) {
      throw new InvalidInputError('invalid_argument', `maxConcurrentUploadBytes: expected an integer number of bytes >= 1024, got ${JSON.stringify(max)}`, {
        field: 'maxConcurrentUploadBytes',
      });
    }
    this.dir = resolve(options.dir);
    this.maxConcurrentBytes = max;
  }

  /** Creates the dir and removes files a crashed engine left in it. */
  static async open(options: UploadSpoolOptions): Promise<UploadSpool> {
    const spool = new UploadSpool(options);
    await mkdir(spool.dir, { recursive: true, mode: 0o700 });
    for (const file of await readdir(spool.dir)) {
      if (UPLOAD_FILE.test(file)) await rm(join(spool.dir, file), { force: true });
    }
    return spool;
  }

  /** Bytes reserved by uploads in progress. */
  get reservedBytes(): number {
    return this.reserved;
  }

  get uploadsInProgress(): number {
    return this.active.size;
  }

  /** Starts an upload that says it will send `declaredBytes` (0: unknown). Throws OverloadError past the budget. */
  begin(declaredBytes: number): SpooledUpload {
    const upload = new SpooledUpload(this, join(this.dir, `${randomBytes(12).toString('hex')}.upload`));
    this.reserve(upload, Math.max(0, declaredBytes));
    this.active.add(upload);
    return upload;
  }

  /** @internal */
  reserve(upload: SpooledUpload, bytes: number): void {
    if (bytes <= 0) return;
    const needs = upload.reservedBytes + bytes;
    if (needs > this.maxConcurrentBytes) {
      throw new OverloadError(
        'queue_full',
        `upload refused: it needs ${needs} bytes, more than the ${this.maxConcurrentBytes}-byte limit on concurrent uploads ` +
          `(max-concurrent-upload-bytes) on its own: raise the limit to upload it`,
      );
    }
    if (this.reserved + bytes > this.maxConcurrentBytes) {
      const holding = this.reserved - upload.reservedBytes;
      throw new OverloadError(
        'queue_full',
        `upload refused: uploads in progress hold ${holding} bytes and this one needs ${upload.reservedBytes + bytes}, ` +
          `more than the ${this.maxConcurrentBytes}-byte limit on concurrent uploads (max-concurrent-upload-bytes); retry when they finish`,
      );
    }
    this.reserved += bytes;
    upload.reservedBytes += bytes;
  }

  /** @internal */
  release(upload: SpooledUpload): void {
    if (!this.active.delete(upload)) return;
    this.reserved -= upload.reservedBytes;
    upload.reservedBytes = 0;
  }
}

/** One upload being spooled: `write` each chunk in order, then `finish`; always `discard` at the end. */
export class SpooledUpload {
  /** @internal */
  reservedBytes = 0;
  private readonly hash = createHash('sha256');
  private handle: FileHandle | undefined;
  private size = 0;
  private finished: ArchiveFile | undefined;
  private discarded = false;

  constructor(
    private readonly spool: UploadSpool,
    readonly path: string,
  ) {}

  get bytesWritten(): number {
    return this.size;
  }

  /** Appends a chunk (the caller waits before sending the next). Throws OverloadError past the spool's budget. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.discarded || this.finished) throw new Error(`upload ${this.path} is already ${this.discarded ? 'discarded' : 'finished'}`);
    const beyond = this.size + chunk.length - this.reservedBytes;
    if (beyond > 0) this.spool.reserve(this, beyond);
    this.handle ??= await open(this.path, 'wx', 0o600);
    this.hash.update(chunk);
    this.size += chunk.length;
    let offset = 0;
    while (offset < chunk.length) {
      const { bytesWritten } = await this.handle.write(chunk, offset, chunk.length - offset);
      offset += bytesWritten;
    }
  }

  /** Closes the file: its path, sha256 and size. The file stays until `discard`. */
  async finish(): Promise<ArchiveFile> {
    if (this.finished) return this.finished;
    if (this.discarded) throw new Error(`upload ${this.path} is already discarded`);
    this.handle ??= await open(this.path, 'wx', 0o600);
    await this.handle.close();
    this.handle = undefined;
    this.finished = { path: this.path, sha256: this.hash.digest('hex'), size: this.size };
    return this.finished;
  }

  /** Removes the file (if storage did not move it away) and gives the reservation back. Idempotent. */
  async discard(): Promise<void> {
    if (this.discarded) return;
    this.discarded = true;
    try {
      await this.handle?.close().catch(() => undefined);
      this.handle = undefined;
      await rm(this.path, { force: true });
    } finally {
      this.spool.release(this);
    }
  }
}
