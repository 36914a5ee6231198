import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { pack as tarPack, type Header } from 'tar-stream';
import { createGzip } from 'node:zlib';
import { InvalidInputError } from '../engine/errors/index.js';

/** Names never packed. */
const SKIPPED = new Set(['.git']);

interface Entry {
  path: string;
  header: Partial<Header> & { name: string };
  content?: Buffer;
}

async function walk(root: string, dir: string, entries: Entry[]): Promise<void> {
  const names = (await readdir(dir)).sort();
  for (const name of names) {
    if (SKIPPED.has(name)) continue;
    const full = join(dir, name);
    const path = relative(root, full).split(sep).join('/');
    const stat = await lstat(full);
    const mode = stat.mode & 0o7777;
    // Fixed owner and time: the same tree gives the same bytes (and sha256) on every upload.
    const common = { mode, uid: 0, gid: 0, uname: '', gname: '', mtime: new Date(0) };
    if (stat.isDirectory()) {
      entries.push({ path, header: { ...common, name: `${path}/`, type: 'directory' } });
      await walk(root, full, entries);
    } else if (stat.isFile()) {
      const content = await readFile(full);
      entries.push({ path, header: { ...common, name: path, type: 'file', size: content.length }, content });
    } else if (stat.isSymbolicLink()) {
      entries.push({ path, header: { ...common, name: path, type: 'symlink', linkname: await readlink(full) } });
    }
    // Sockets, fifos and devices have no place in an app archive: skipped.
  }
}

/**
 * Packs a directory into a deterministic .tar.gz (modes kept, .git skipped, files/dirs/symlinks
 * only). `extra` files (name → content) are added at the root, e.g. a generated Dockerfile.
 */
export async function packDirectory(dir: string, extra: Record<string, string | Buffer> = {}): Promise<Buffer> {
  const stat = await lstat(dir).catch(() => undefined);
  if (!stat?.isDirectory()) throw new InvalidInputError('invalid_argument', `${dir} is not a directory`, { field: 'DIR' });
  const entries: Entry[] = [];
  await walk(dir, dir, entries);
  for (const [name, value] of Object.entries(extra)) {
    const content = Buffer.from(value);
    entries.push({ path: name, header: { name, type: 'file', size: content.length, mode: 0o644, uid: 0, gid: 0, mtime: new Date(0) }, content });
  }
  const tar = tarPack();
  const gzip = createGzip({ level: 6 });
  const chunks: Buffer[] = [];
  gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<void>((resolve, reject) => {
    gzip.on('end', resolve);
    gzip.on('error', reject);
    tar.on('error', reject);
  });
  tar.pipe(gzip);
  for (const entry of entries) {
    await new Promise<void>((resolve, reject) => {
      const callback = (error?: Error | null) => (error ? reject(error) : resolve());
      if (entry.content) tar.entry(entry.header, entry.content, callback);
      else tar.entry(entry.header, callback);
    });
  }
  tar.finalize();
  await done;
  return Buffer.concat(chunks);
}
