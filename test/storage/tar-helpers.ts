import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

export interface TestEntry {
  name: string;
  type?: 'file' | 'link' | 'symlink' | 'directory' | 'fifo' | 'character-device' | 'block-device';
  content?: string | Buffer;
  mode?: number;
  linkname?: string;
  size?: number;
}

/** Builds a tar (optionally gzipped) exactly as given, malicious entries included. */
export async function makeTar(entries: TestEntry[], gzip = false): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (chunk) => chunks.push(chunk as Buffer));
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const entry of entries) {
    const { content, ...header } = entry;
    await new Promise<void>((resolve, reject) => {
      const callback = (error?: Error | null) => (error ? reject(error) : resolve());
      if (content !== undefined) pack.entry(header, content, callback);
      else pack.entry({ ...header, size: 0 }, callback);
    });
  }
  pack.finalize();
  await done;
  const plain = Buffer.concat(chunks);
  return gzip ? gzipSync(plain) : plain;
}
