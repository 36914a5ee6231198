import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { InvalidInputError } from '../errors/index.js';
import type { AppRecord } from './types.js';

const SHA256 = /^[0-9a-f]{64}$/;

/** sha256 (hex) and size of a file, streamed. */
export async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

/** Refuses (naming the field) an archive file whose bytes do not match what the record says. */
export async function checkArchiveFile(record: AppRecord, path: string): Promise<void> {
  if (typeof record.sha256 !== 'string' || !SHA256.test(record.sha256)) {
    throw new InvalidInputError('invalid_argument', `app ${record.name}: record sha256 ${JSON.stringify(record.sha256)} is not 64 hex digits`, { field: 'sha256' });
  }
  const { sha256, size } = await hashFile(path);
  if (record.sha256 !== sha256 || record.size !== size) {
    throw new InvalidInputError(
      'invalid_argument',
      `app ${record.name}: record says sha256 ${record.sha256} and ${record.size} bytes, the archive is ${sha256} and ${size} bytes`,
      { field: 'sha256' },
    );
  }
}
