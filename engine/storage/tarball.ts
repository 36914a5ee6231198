import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, link, mkdir, open, rename, rm, symlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { EngineError, InvalidInputError } from '../errors/index.js';
import { pathExists } from '../util/atomic-file.js';
import { openTar, type ArchiveSource } from './tar-source.js';

export interface ArchiveLimits {
  /** Total bytes of all regular files, uncompressed. */
  maxBytes: number;
  /** Entries of any kind (files, directories, links). */
  maxFiles: number;
  /** Bytes of any single file. */
  maxFileBytes: number;
}

export const DEFAULT_ARCHIVE_LIMITS: Readonly<ArchiveLimits> = Object.freeze({
  maxBytes: 512 * 1024 * 1024,
  maxFiles: 20_000,
  maxFileBytes: 256 * 1024 * 1024,
});

export function resolveArchiveLimits(limits: Partial<ArchiveLimits> = {}): ArchiveLimits {
  const resolved = { ...DEFAULT_ARCHIVE_LIMITS };
  for (const key of Object.keys(DEFAULT_ARCHIVE_LIMITS) as Array<keyof ArchiveLimits>) {
    const value = limits[key];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new InvalidInputError('invalid_argument', `archive limit "${key}" must be an integer >= 1 (got ${String(value)})`, { field: key });
    }
    resolved[key] = value;
  }
  return resolved;
}

export type { ArchiveSource } from './tar-source.js';

export interface ArchiveSummary {
  /** Entries of any kind. */
  entries: number;
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  /** Uncompressed bytes of regular files. */
  bytes: number;
  compressed: boolean;
  /** Normalised paths of files and links (not directories), in archive order. */
  paths: string[];
  /** Content of the files asked for with `capture` that the archive has. */
  captured: Map<string, Buffer>;
}

type Kind = 'file' | 'directory' | 'symlink';

function refuse(entry: string, why: string): never {
  throw new InvalidInputError('unsafe_archive', `archive entry ${JSON.stringify(entry)} refused: ${why}`, { field: entry });
}

/** Path segments without empty and `.` ones: `./a//b/` -> ['a', 'b']. */
function segments(path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.');
}

/** `./a//b/` -> `a/b`; '' for the root itself. Refuses absolute paths and `..`. */
function normaliseEntryPath(raw: string): string {
  if (raw.includes('\0')) refuse(raw, 'NUL character in the path');
  if (raw.startsWith('/')) refuse(raw, 'absolute path');
  const parts = segments(raw);
  if (parts.includes('..')) refuse(raw, "path contains a '..' segment");
  return parts.join('/');
}

/**
 * The tree an archive would build, checked entry by entry: no path through a symlink, no kind
 * changes (a symlink replacing a directory and so on), hard links only to earlier regular files.
 */
class TreeCheck {
  readonly kinds = new Map<string, Kind>();
  readonly symlinks = new Map<string, string>();

  /** Registers implicit parent directories; refuses a path below a symlink or a file. */
  checkParents(raw: string, path: string): void {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const kind = this.kinds.get(prefix);
      if (kind === 'symlink') refuse(raw, `path passes through the symlink ${JSON.stringify(prefix)}`);
      if (kind === 'file') refuse(raw, `path passes through the file ${JSON.stringify(prefix)}`);
      if (kind === undefined) this.kinds.set(prefix, 'directory');
    }
  }

  claim(raw: string, path: string, kind: Kind): void {
    const existing = this.kinds.get(path);
    if (existing !== undefined && (existing !== kind || kind === 'symlink')) {
      refuse(raw, `replaces an earlier ${existing} at the same path`);
    }
    this.kinds.set(path, kind);
  }

  /** Resolves a symlink over the archive's own tree, following links in it; refuses escapes and loops. */
  checkSymlinkTarget(path: string, target: string): void {
    const stack = path.split('/').slice(0, -1);
    let queue = target.split('/');
    let hops = 0;
    while (queue.length > 0) {
      const part = queue.shift() as string;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (stack.length === 0) refuse(path, `symlink target ${JSON.stringify(target)} resolves outside the archive root`);
        stack.pop();
        continue;
      }
      stack.push(part);
      const next = this.symlinks.get(stack.join('/'));
      if (next !== undefined) {
        if (++hops > 40) refuse(path, `symlink target ${JSON.stringify(target)} loops`);
        stack.pop();
        queue = [...next.split('/'), ...queue];
      }
    }
  }
}

interface EntryWriter {
  directory(path: string, mode: number): Promise<void>;
  file(path: string, mode: number, mtime: Date | undefined, content: AsyncIterable<Buffer>): Promise<void>;
  symlink(path: string, target: string): Promise<void>;
  hardlink(path: string, target: string): Promise<void>;
}

export interface WalkOptions {
  /** Sees every byte of the archive as read (e.g. to hash it on the way). */
  onChunk?: (chunk: Buffer) => void;
  /** Regular files whose content to keep (normalised paths; the last entry of a path wins)... */
  capture?: readonly string[];
  /** ...each of at most this many bytes (default 1 MiB); a larger one is refused. */
  captureMaxBytes?: number;
}

const DEFAULT_CAPTURE_MAX_BYTES = 1024 * 1024;

/** Streams the archive once, checking every entry; hands checked entries to `writer` when given. */
async function walkArchive(archive: ArchiveSource, limits: ArchiveLimits, writer?: EntryWriter, options: WalkOptions = {}): Promise<ArchiveSummary> {
  const summary: ArchiveSummary = { entries: 0, files: 0, directories: 0, symlinks: 0, hardlinks: 0, bytes: 0, compressed: false, paths: [], captured: new Map() };
  const capture = new Set((options.capture ?? []).map((path) => segments(path).join('/')));
  const captureMaxBytes = options.captureMaxBytes ?? DEFAULT_CAPTURE_MAX_BYTES;
  const tree = new TreeCheck();
  const reader = openTar(archive, options.onChunk);
  try {
    for await (const entry of reader.entries) {
      const header = entry.header;
      const raw = header.name;
      // tar-stream consumes pax and GNU long-name headers itself; null is a type flag it does not know.
      const type = (header.type as string | null) ?? 'unknown';
      const path = normaliseEntryPath(raw);
      if (path === '') {
        if (type !== 'directory') refuse(raw, 'entry has no name');
        entry.resume();
        continue;
      }
      if (++summary.entries > limits.maxFiles) refuse(raw, `archive has more than ${limits.maxFiles} entries`);
      tree.checkParents(raw, path);
      const mode = (header.mode ?? 0o644) & 0o777;

      switch (type) {
        case 'directory':
          tree.claim(raw, path, 'directory');
          summary.directories++;
          entry.resume();
          await writer?.directory(path, mode);
          break;
        case 'file':
        case 'contiguous-file': {
          const size = header.size ?? 0;
          if (size > limits.maxFileBytes) refuse(raw, `file is ${size} bytes, more than the ${limits.maxFileBytes} allowed for one file`);
          if (summary.bytes + size > limits.maxBytes) refuse(raw, `archive content exceeds ${limits.maxBytes} bytes`);
          tree.claim(raw, path, 'file');
          summary.bytes += size;
          summary.files++;
          summary.paths.push(path);
          if (writer) await writer.file(path, mode, header.mtime, entry as unknown as AsyncIterable<Buffer>);
          else if (capture.has(path)) {
            if (size > captureMaxBytes) refuse(raw, `file is ${size} bytes, more than the ${captureMaxBytes} allowed for it`);
            const chunks: Buffer[] = [];
            for await (const chunk of entry as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
            summary.captured.set(path, Buffer.concat(chunks));
          } else entry.resume();
          break;
        }
        case 'symlink': {
          const target = header.linkname ?? '';
          if (target === '') refuse(raw, 'symlink has no target');
          if (target.startsWith('/')) refuse(raw, `symlink target ${JSON.stringify(target)} is absolute`);
          if (target.includes('\0')) refuse(raw, 'NUL character in the symlink target');
          tree.claim(raw, path, 'symlink');
          tree.symlinks.set(path, target);
          // Checked against the tree so far; re-checked at the end against the whole tree.
          tree.checkSymlinkTarget(path, target);
          summary.symlinks++;
          summary.paths.push(path);
          entry.resume();
          await writer?.symlink(path, target);
          break;
        }
        case 'link': {
          const rawTarget = header.linkname ?? '';
          if (rawTarget.startsWith('/')) refuse(raw, `hard link target ${JSON.stringify(rawTarget)} is absolute`);
          const targetParts = segments(rawTarget);
          if (targetParts.includes('..')) refuse(raw, `hard link target ${JSON.stringify(rawTarget)} contains a '..' segment`);
          const target = targetParts.join('/');
          if (tree.kinds.get(target) !== 'file') refuse(raw, `hard link target ${JSON.stringify(rawTarget)} is not an earlier regular file in the archive`);
          tree.claim(raw, path, 'file');
          summary.hardlinks++;
          summary.paths.push(path);
          entry.resume();
          await writer?.hardlink(path, target);
          break;
        }
        default:
          refuse(raw, `entries of type ${type} (devices, fifos...) are not allowed`);
      }
    }
  } catch (error) {
    throw reader.fail(error);
  }
  summary.compressed = reader.compressed();
  // A later symlink can redirect an earlier one: check all of them against the complete tree.
  for (const [path, target] of tree.symlinks) tree.checkSymlinkTarget(path, target);
  return summary;
}

/** Checks an archive (tar or tar.gz) without writing anything, in one pass; keeps the files named in `options.capture`. */
export function inspectArchive(archive: ArchiveSource, limits?: Partial<ArchiveLimits>, options?: WalkOptions): Promise<ArchiveSummary> {
  return walkArchive(archive, resolveArchiveLimits(limits), undefined, options);
}

const FILE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

export interface ExtractOptions {
  /** Sees every byte of the archive as read. */
  onChunk?: (chunk: Buffer) => void;
  /** Runs after the whole archive was read and written, before the tree is renamed into place; throwing discards it. */
  beforeCommit?: () => void | Promise<void>;
}

/**
 * Extracts into `destDir`, which must not exist yet, streaming the archive. Everything is written
 * into a temp dir beside it and renamed into place at the end, so a refused archive leaves nothing behind.
 */
export async function extractArchive(archive: ArchiveSource, destDir: string, limits?: Partial<ArchiveLimits>, options: ExtractOptions = {}): Promise<ArchiveSummary> {
  const resolved = resolveArchiveLimits(limits);
  const parent = dirname(destDir);
  await mkdir(parent, { recursive: true });
  if (await pathExists(destDir)) {
    if (archive instanceof Readable) archive.destroy();
    throw new EngineError('storage_error', `cannot extract into ${destDir}: it already exists`);
  }
  const temp = join(parent, `.${basename(destDir)}.extract-${randomBytes(6).toString('hex')}`);
  await mkdir(temp, { mode: 0o755 });
  const directoryModes = new Map<string, number>();
  const inside = (path: string) => join(temp, ...path.split('/'));
  const made = new Set<string>([temp]);
  const makeDir = async (dir: string) => {
    if (made.has(dir)) return;
    await mkdir(dir, { recursive: true, mode: 0o755 });
    made.add(dir);
  };

  const writer: EntryWriter = {
    async directory(path, mode) {
      await makeDir(inside(path));
      directoryModes.set(path, mode);
    },
    async file(path, mode, mtime, content) {
      const target = inside(path);
      await makeDir(dirname(target));
      // O_EXCL: a repeated path gets a new inode rather than writing through an earlier hard link.
      const handle = await open(target, FILE_FLAGS, mode | 0o400).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
        await rm(target);
        return open(target, FILE_FLAGS, mode | 0o400);
      });
      try {
        for await (const chunk of content) await handle.write(chunk);
        await handle.chmod(mode | 0o400);
        if (mtime) await handle.utimes(mtime, mtime);
      } finally {
        await handle.close();
      }
    },
    async symlink(path, linkTarget) {
      const target = inside(path);
      await makeDir(dirname(target));
      await symlink(linkTarget, target);
    },
    async hardlink(path, existing) {
      const target = inside(path);
      await makeDir(dirname(target));
      await rm(target, { force: true });
      await link(inside(existing), target);
    },
  };

  try {
    const summary = await walkArchive(archive, resolved, writer, { onChunk: options.onChunk });
    await options.beforeCommit?.();
    // Deepest first, and never so strict that the owner cannot later remove the tree.
    const dirs = [...directoryModes].sort((a, b) => b[0].length - a[0].length);
    for (const [path, mode] of dirs) await chmod(inside(path), mode | 0o700);
    await rename(temp, destDir);
    return summary;
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}

/** The content of one regular file in the archive (the last entry of that path wins), or undefined. */
export async function readFileFromArchive(archive: ArchiveSource, path: string, maxBytes = DEFAULT_ARCHIVE_LIMITS.maxFileBytes): Promise<Buffer | undefined> {
  const wanted = segments(path).join('/');
  const reader = openTar(archive);
  let found: Buffer | undefined;
  try {
    for await (const entry of reader.entries) {
      const type = entry.header.type as string | null;
      if (segments(entry.header.name).join('/') !== wanted || (type !== 'file' && type !== 'contiguous-file')) {
        entry.resume();
        continue;
      }
      if ((entry.header.size ?? 0) > maxBytes) {
        throw new InvalidInputError('unsafe_archive', `archive entry ${JSON.stringify(entry.header.name)} refused: more than ${maxBytes} bytes`, { field: entry.header.name });
      }
      const chunks: Buffer[] = [];
      for await (const chunk of entry as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
      found = Buffer.concat(chunks);
    }
  } catch (error) {
    throw reader.fail(error);
  }
  return found;
}
