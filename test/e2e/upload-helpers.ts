import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { ClientWritableStream, ServiceError } from '@grpc/grpc-js';
import tar from 'tar-stream';
import type { EngineClient } from '../../engine/api/client.js';
import type { AppInfoMessage } from '../../engine/api/messages.js';
import { ERROR_CODE_TRAILER } from '../../engine/api/status.js';

/** Helpers of the upload-*.test.ts files: app archives produced as they are sent, raw UploadApp streams. */

export const MiB = 1024 * 1024;
const INDEX_JS = 'export function echo(request) { return request.body(); }\nexport function ping() { return "pong"; }\n';
/** Incompressible filler, repeated: the engine must carry every byte, whatever they are. */
const BLOCK = randomBytes(MiB);

/** A node app archive (plain tar) with a `blob.bin` of `blobBytes`, produced as the upload reads it. */
export async function* appArchive(name: string, blobBytes: number): AsyncGenerator<Buffer> {
  const pack = tar.pack();
  const produce = (async () => {
    pack.entry({ name: 'manifest.yaml' }, `name: ${name}\nplugin: node\nentrypoint: index.js\nevents:\n  echo: {}\n  ping: {}\n`);
    pack.entry({ name: 'index.js' }, INDEX_JS);
    const blob = pack.entry({ name: 'blob.bin', size: blobBytes });
    for (let written = 0; written < blobBytes; written += BLOCK.length) {
      if (!blob.write(BLOCK.subarray(0, Math.min(BLOCK.length, blobBytes - written)))) await once(blob as never, 'drain');
    }
    (blob as unknown as { end(): void }).end();
    pack.finalize();
  })();
  for await (const chunk of pack as AsyncIterable<Buffer>) yield chunk;
  await produce;
}

/** Bytes of appArchive(): three headers, two one-block files, the padded blob, two end blocks. */
export const archiveSize = (blobBytes: number) => 3 * 512 + 2 * 512 + blobBytes + ((512 - (blobBytes % 512)) % 512) + 1024;

export interface UploadFailure {
  status: number;
  code: string;
  message: string;
}

/** A raw UploadApp stream: the header, then whatever the test writes, in 1 MiB messages. */
export function openUpload(client: EngineClient, header: { name?: string; size: number }) {
  let call!: ClientWritableStream<object>;
  const result = new Promise<AppInfoMessage>((resolve, reject) => {
    call = client.deploy.UploadApp((error: ServiceError | null, reply: AppInfoMessage) => (error ? reject(error) : resolve(reply)));
  });
  result.catch(() => undefined);
  let settled = false;
  const answered = result.then(
    () => undefined,
    () => undefined,
  );
  void answered.then(() => (settled = true));
  call.write({ header: { name: header.name ?? '', manifest: Buffer.alloc(0), manifestFile: '', profile: '', size: header.size } });
  return {
    result,
    /** Writes until the engine answers (an early answer, e.g. a refusal, stops the writing). */
    async write(chunk: Buffer): Promise<void> {
      for (let offset = 0; offset < chunk.length && !settled; offset += MiB) {
        if (!call.write({ archive: chunk.subarray(offset, offset + MiB) })) await Promise.race([once(call, 'drain'), answered]);
      }
    },
    async send(source: AsyncIterable<Buffer>): Promise<void> {
      let pending: Buffer[] = [];
      let size = 0;
      for await (const chunk of source) {
        pending.push(chunk);
        size += chunk.length;
        if (size >= MiB) {
          await this.write(Buffer.concat(pending));
          pending = [];
          size = 0;
        }
      }
      if (size > 0) await this.write(Buffer.concat(pending));
    },
    end: () => call.end(),
    cancel: () => call.cancel(),
  };
}

/** At least `bytes` from the iterator, leaving the rest in it. */
export async function take(iterator: AsyncIterator<Buffer>, bytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  while (size < bytes) {
    const next = await iterator.next();
    if (next.done) break;
    chunks.push(next.value);
    size += next.value.length;
  }
  return Buffer.concat(chunks);
}

export async function failureOf(promise: Promise<unknown>): Promise<UploadFailure> {
  const error = (await promise.then(
    () => undefined,
    (e: unknown) => e,
  )) as ServiceError | undefined;
  if (!error) throw new Error('expected the upload to fail');
  return { status: error.code, code: String(error.metadata?.get(ERROR_CODE_TRAILER)[0] ?? ''), message: error.details };
}

export async function upload(client: EngineClient, name: string, blobBytes: number): Promise<AppInfoMessage> {
  const stream = openUpload(client, { size: archiveSize(blobBytes) });
  await stream.send(appArchive(name, blobBytes));
  stream.end();
  return stream.result;
}

