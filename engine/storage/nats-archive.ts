import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { JetStreamManager, MsgRequest, StoredMsg } from '@nats-io/jetstream';
import type { ObjectInfo } from '@nats-io/obj';
import { EngineError } from '../errors/index.js';

/**
 * An object-store object as a stream whose chunks are fetched one at a time from the stream
 * leader, each when the reader asks for it: memory holds about one chunk however slow the reader
 * (the object store's own `get` pushes every chunk at once). Size and digest are checked at the end.
 * `retry` wraps each request (the storage's failover guard).
 */
export function readObject(
  jsm: JetStreamManager,
  bucket: string,
  info: ObjectInfo,
  retry: (operation: () => Promise<StoredMsg | null>) => Promise<StoredMsg | null>,
): Readable {
  const stream = `OBJ_${bucket}`;
  const subject = `$O.${bucket}.C.${info.nuid}`;
  const hash = createHash('sha256');
  // The object store writes `SHA-256=<base64url, padded>`.
  const expected = info.digest.replace(/=+$/, '');
  let seq = 0;
  let chunks = 0;
  let size = 0;
  const output: Readable = new Readable({
    read: () => {
      if (chunks >= info.chunks) {
        const digest = `SHA-256=${hash.digest('base64url')}`;
        if (size !== info.size || digest !== expected) {
          output.destroy(new EngineError('storage_error', `NATS storage: object "${info.name}" in ${bucket} is corrupt: read ${size} bytes with ${digest}, its info says ${info.size} bytes with ${info.digest}`));
        } else output.push(null);
        return;
      }
      // The next message of the object's chunk subject after the last one read.
      const query = { seq: seq + 1, next_by_subj: subject } as unknown as MsgRequest;
      retry(() => jsm.streams.getMessage(stream, query))
        .then((message) => {
          if (!message || message.subject !== subject) {
            throw new EngineError('storage_error', `NATS storage: chunk ${chunks + 1} of ${info.chunks} of object "${info.name}" in ${bucket} is missing (replaced or removed meanwhile?)`);
          }
          seq = message.seq;
          chunks++;
          size += message.data.length;
          hash.update(message.data);
          output.push(Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength));
        })
        .catch((error: unknown) => output.destroy(error as Error));
    },
  });
  return output;
}
