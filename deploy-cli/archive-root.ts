import { createGunzip, gzipSync } from 'node:zlib';
import { extract as tarExtract, pack as tarPack, type Header } from 'tar-stream';
import { UsageError } from './errors.js';

export const MANIFEST_NAMES = ['manifest.yaml', 'manifest.yml', 'manifest.json'];

interface ArchiveEntry {
  header: Header;
  /** Normalised path (no `./`, no trailing `/`). */
  path: string;
  content?: Buffer;
}

export interface RootedArchive {
  archive: Buffer;
  /** The manifest found at the archive's root (after stripping), with its name. */
  manifest?: Buffer;
  manifestFile?: string;
  /** The single top-level folder that was stripped, when one was. */
  stripped?: string;
}

function normalise(name: string): string {
  return name
    .split('/')
    .filter((part) => part !== '' && part !== '.')
    .join('/');
}

/** Every entry of a .tar or .tar.gz, with the contents of the files `keep` selects. Throws when unreadable. */
async function readEntries(archive: Buffer, keep: (path: string) => boolean): Promise<ArchiveEntry[]> {
  const entries: ArchiveEntry[] = [];
  const reader = tarExtract();
  const done = new Promise<void>((resolve, reject) => {
    reader.on('finish', resolve);
    reader.on('error', reject);
  });
  reader.on('entry', (header, stream, next) => {
    const path = normalise(header.name);
    const withContent = header.type === 'file' && keep(path);
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: unknown) => {
      if (withContent) chunks.push(chunk as Buffer);
    });
    stream.on('end', () => {
      entries.push({ header, path, ...(withContent ? { content: Buffer.concat(chunks) } : {}) });
      next();
    });
    stream.on('error', (error: Error) => reader.destroy(error));
  });
  if (archive.length >= 2 && archive[0] === 0x1f && archive[1] === 0x8b) {
    const gunzip = createGunzip();
    gunzip.on('error', (error) => reader.destroy(error));
    gunzip.pipe(reader);
    gunzip.end(archive);
  } else {
    reader.end(archive);
  }
  await done;
  return entries;
}

async function repack(entries: ArchiveEntry[], prefix: string): Promise<Buffer> {
  const tar = tarPack();
  const chunks: Buffer[] = [];
  tar.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    tar.on('end', resolve);
    tar.on('error', reject);
  });
  for (const entry of entries) {
    const path = entry.path.slice(prefix.length + 1);
    if (path === '') continue;
    const header: Header = { ...entry.header, name: entry.header.type === 'directory' ? `${path}/` : path };
    // A hard link names another entry of the archive: it moves with it.
    if (entry.header.type === 'link' && entry.header.linkname) header.linkname = normalise(entry.header.linkname).slice(prefix.length + 1);
    await new Promise<void>((resolve, reject) => {
      const callback = (error?: Error | null) => (error ? reject(error) : resolve());
      if (entry.content) tar.entry(header, entry.content, callback);
      else tar.entry(header, callback);
    });
  }
  tar.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks), { level: 6 });
}

function rootManifest(entries: ArchiveEntry[], prefix: string): ArchiveEntry | undefined {
  for (const name of MANIFEST_NAMES) {
    const path = prefix ? `${prefix}/${name}` : name;
    const found = entries.find((entry) => entry.path === path && entry.header.type === 'file');
    if (found) return found;
  }
  return undefined;
}

/**
 * An app archive has its files at the root. `tar czf app.tgz app/` puts them under one folder:
 * when the root holds nothing but that folder and the folder holds the manifest, the folder is
 * stripped. Without a manifest at the root (and none given with --manifest) the upload is refused
 * here with how to build the archive. An archive this cannot read goes as is (the engine says why).
 */
export async function rootArchive(archive: Buffer, file: string, manifestGiven: boolean): Promise<RootedArchive> {
  let entries: ArchiveEntry[];
  try {
    // Only manifests (at the root or one folder down) are kept in memory on this pass.
    entries = await readEntries(archive, (path) => path.split('/').length <= 2 && MANIFEST_NAMES.some((name) => path.endsWith(name)));
  } catch {
    return { archive };
  }
  const atRoot = rootManifest(entries, '');
  if (atRoot) return { archive, manifest: atRoot.content, manifestFile: atRoot.path };
  const tops = new Set(entries.map((entry) => entry.path.split('/')[0]).filter((top) => top !== ''));
  const [top] = tops;
  const single = tops.size === 1 && top !== undefined && entries.every((entry) => entry.path === top ? entry.header.type === 'directory' : true);
  if (single && rootManifest(entries, top)) {
    const full = await readEntries(archive, () => true);
    const manifest = rootManifest(full, top)!;
    return { archive: await repack(full, top), manifest: manifest.content, manifestFile: manifest.path.slice(top.length + 1), stripped: top };
  }
  if (manifestGiven) return { archive };
  const hint = single ? ` (its files sit under "${top}/" with no manifest there either)` : '';
  throw new UsageError(
    `no manifest at the root of ${file}${hint}: looked for ${MANIFEST_NAMES.join(', ')}. ` +
      'Files must be at the archive\'s root (build it with: tar czf app.tar.gz -C DIR .), or give --manifest FILE',
    'manifest',
  );
}
