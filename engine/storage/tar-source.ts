import { createReadStream } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { EngineError, InvalidInputError } from '../errors/index.js';

/**
 * Where an archive is read from, always as a stream (never whole in memory): bytes (tests, small
 * archives), the path of a local file, or an open stream (e.g. Storage.openArchive), read once.
 */
export type ArchiveSource = Uint8Array | string | Readable;

function isGzip(head: Buffer): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

function toStream(source: ArchiveSource): Readable {
  if (typeof source === 'string') return createReadStream(source);
  if (source instanceof Uint8Array) return Readable.from([source]);
  return source;
}

/** Resolves when `target` can take more (or is gone): a destroyed sink must not hang the pump. */
function drained(target: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      target.off('drain', done);
      target.off('close', done);
      resolve();
    };
    target.on('drain', done);
    target.on('close', done);
  });
}

export interface TarReader {
  entries: AsyncIterable<tar.Extract extends AsyncIterable<infer E> ? E : never>;
  /** Whether the archive was gzip-compressed (known once the first bytes were read). */
  compressed(): boolean;
  /** Stops reading and turns what went wrong into an EngineError. */
  fail(error: unknown): EngineError;
}

/** The source's bytes go to `onChunk` (e.g. a hash) and, gunzipped when they start with gzip's magic, to the tar parser. */
export function openTar(input: ArchiveSource, onChunk?: (chunk: Buffer) => void): TarReader {
  const source = toStream(input);
  const extract = tar.extract();
  let gunzip: ReturnType<typeof createGunzip> | undefined;
  let compressed = false;
  let sourceError: EngineError | undefined;
  const choose = (head: Buffer): Writable => {
    compressed = isGzip(head);
    if (!compressed) return extract as unknown as Writable;
    gunzip = createGunzip();
    gunzip.on('error', (error) => extract.destroy(error));
    gunzip.pipe(extract as unknown as Writable);
    return gunzip;
  };
  void (async () => {
    const head: Buffer[] = [];
    let headBytes = 0;
    let target: Writable | undefined;
    const write = async (chunk: Buffer) => {
      if (!(target as Writable).write(chunk)) await drained(target as Writable);
    };
    try {
      for await (const raw of source as AsyncIterable<Uint8Array>) {
        const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
        onChunk?.(chunk);
        if (target) {
          await write(chunk);
          continue;
        }
        head.push(chunk);
        headBytes += chunk.length;
        if (headBytes < 2) continue;
        const first = Buffer.concat(head);
        target = choose(first);
        await write(first);
      }
      if (!target) {
        const first = Buffer.concat(head);
        target = choose(first);
        if (first.length > 0) await write(first);
      }
      target.end();
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      sourceError = error instanceof EngineError ? error : new EngineError('storage_error', `cannot read the archive: ${detail}`, { cause: error });
      extract.destroy(sourceError);
    }
  })();
  return {
    entries: extract,
    compressed: () => compressed,
    fail(error) {
      source.destroy();
      gunzip?.destroy();
      extract.destroy();
      if (sourceError) return sourceError;
      if (error instanceof EngineError) return error;
      const detail = error instanceof Error ? error.message : String(error);
      // File-system failures while writing (ENOSPC, EACCES...) are ours, not the archive's.
      if ((error as NodeJS.ErrnoException).syscall !== undefined) return new EngineError('storage_error', `cannot extract the archive: ${detail}`, { cause: error });
      return new InvalidInputError('invalid_argument', `archive is not a readable tar${compressed ? '.gz' : ''} file: ${detail}`, { field: 'archive', cause: error });
    },
  };
}

