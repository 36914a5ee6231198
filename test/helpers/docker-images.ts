/**
 * Base images for the Docker tests without a registry: a root file system assembled from the
 * host's own binaries (with the shared libraries ldd names), streamed as a tar into `docker import`.
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, lstatSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type Dockerode from 'dockerode';
import tar from 'tar-stream';

export type BaseTool = 'sh' | 'node' | 'python3' | 'perl';

export interface BaseImageOptions {
  tag: string;
  include: BaseTool[];
}

/** Small tools the shell fixtures use next to /bin/sh. */
const SHELL_TOOLS = ['sleep', 'cat', 'ls', 'env', 'id', 'rm', 'mkdir', 'echo', 'true', 'false', 'head', 'wc', 'tr', 'dd'];
/** Parts of the Python standard library no worker needs; they only cost build time. */
const PYTHON_SKIP = new Set(['test', 'idlelib', 'tkinter', 'turtledemo', 'ensurepip', 'lib2to3', 'pydoc_data', 'config-3.11-x86_64-linux-gnu', 'distutils']);

const ETC: Record<string, string> = {
  'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
  'etc/group': 'root:x:0:\nnogroup:x:65534:\n',
  'etc/hosts': '127.0.0.1 localhost\n::1 localhost\n',
  'etc/nsswitch.conf': 'passwd: files\ngroup: files\nhosts: files\n',
};

/**
 * Builds (or finds, when `tag` exists already) an image holding the chosen interpreters. Returns
 * the tag and how long the build took (0 when it was cached).
 */
export async function buildBaseImage(docker: Dockerode, options: BaseImageOptions): Promise<{ tag: string; millis: number; bytes: number }> {
  try {
    await docker.getImage(options.tag).inspect();
    return { tag: options.tag, millis: 0, bytes: 0 };
  } catch {
    // Not there yet.
  }
  const started = Date.now();
  const rootfs = new RootfsBuilder();
  rootfs.addTool('/bin/sh');
  for (const tool of SHELL_TOOLS) {
    const path = which(tool);
    if (path) rootfs.addTool(path);
  }
  for (const tool of options.include) {
    if (tool === 'sh') continue;
    if (tool === 'node') rootfs.addTool(requireTool('node'));
    if (tool === 'python3') {
      rootfs.addTool('/usr/bin/python3');
      const version = execFileSync('/usr/bin/python3', ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' }).trim();
      rootfs.addTree(`/usr/lib/python${version}`, (path) => !PYTHON_SKIP.has(basename(path)) && !basename(path).startsWith('config-'));
      // Extension modules bring their own libraries (libffi, libssl, ...).
      for (const module of readdirSync(`/usr/lib/python${version}/lib-dynload`)) rootfs.addLibrariesOf(`/usr/lib/python${version}/lib-dynload/${module}`);
    }
    if (tool === 'perl') {
      const perl = requireTool('perl');
      rootfs.addTool(perl);
      const inc = execFileSync(perl, ['-e', 'print join("\\n", @INC)'], { encoding: 'utf8' }).split('\n');
      for (const dir of inc) if (dir.startsWith('/') && existsSync(dir)) rootfs.addTree(dir);
    }
  }
  const pack = rootfs.pack(ETC, ['tmp', 'proc', 'sys', 'dev', 'app', 'run', 'root', 'opt']);
  const [repo, tag = 'latest'] = splitTag(options.tag);
  const stream: NodeJS.ReadableStream = await docker.importImage(pack, { repo, tag });
  await new Promise<void>((resolvePromise, reject) => {
    docker.modem.followProgress(stream, (error: Error | null, output: Array<{ error?: string }>) => {
      const failed = error ?? output.find((event) => event.error);
      if (failed) reject(new Error(`docker import of ${options.tag} failed: ${error ? error.message : (failed as { error: string }).error}`));
      else resolvePromise();
    });
  });
  return { tag: options.tag, millis: Date.now() - started, bytes: rootfs.bytes };
}

function splitTag(reference: string): [string, string | undefined] {
  const colon = reference.lastIndexOf(':');
  return colon > reference.lastIndexOf('/') ? [reference.slice(0, colon), reference.slice(colon + 1)] : [reference, undefined];
}

function which(tool: string): string | undefined {
  for (const dir of ['/usr/local/bin', '/usr/bin', '/bin']) if (existsSync(join(dir, tool))) return join(dir, tool);
  return undefined;
}

function requireTool(tool: string): string {
  const path = which(tool);
  if (!path) throw new Error(`buildBaseImage: '${tool}' is not installed on this host (looked in /usr/local/bin, /usr/bin, /bin)`);
  return path;
}

type Entry = { kind: 'dir'; mode: number } | { kind: 'file'; mode: number; size: number; source: string } | { kind: 'symlink'; target: string };

/** The set of host paths to copy, keyed by their path inside the image; ancestors and links resolved. */
class RootfsBuilder {
  private readonly entries = new Map<string, Entry>();
  bytes = 0;

  /** A binary, the links leading to it, and the shared libraries it needs. */
  addTool(path: string): void {
    this.addPath(path);
    this.addLibrariesOf(realpathSync(path));
  }

  addLibrariesOf(binary: string): void {
    let output: string;
    try {
      output = execFileSync('ldd', [binary], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return; // Static, or not an ELF file.
    }
    for (const match of output.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)) this.addPath(match[1]!);
  }

  addTree(path: string, keep: (path: string) => boolean = () => true): void {
    this.addPath(path, keep);
  }

  /** Adds `path` (following symlinks, also those among its ancestors); directories recursively. */
  addPath(path: string, keep: (path: string) => boolean = () => true): void {
    const absolute = resolve(path);
    const dir = this.ensureDir(dirname(absolute));
    const here = join(dir, basename(absolute));
    if (this.entries.has(here.slice(1))) return;
    const stat = lstatSync(here);
    if (stat.isSymbolicLink()) {
      const target = readlinkSync(here);
      this.entries.set(here.slice(1), { kind: 'symlink', target });
      this.addPath(resolve(dir, target), keep);
    } else if (stat.isDirectory()) {
      this.entries.set(here.slice(1), { kind: 'dir', mode: stat.mode & 0o7777 });
      for (const name of readdirSync(here)) {
        const child = join(here, name);
        if (keep(child)) this.addPath(child, keep);
      }
    } else if (stat.isFile()) {
      this.entries.set(here.slice(1), { kind: 'file', mode: stat.mode & 0o7777, size: stat.size, source: here });
      this.bytes += stat.size;
    }
  }

  /** Host directory `dir` with every ancestor recorded; returns its real path. */
  private ensureDir(dir: string): string {
    let current = '/';
    for (const part of dir.split('/').filter(Boolean)) {
      const next = join(current, part);
      const stat = lstatSync(next);
      if (stat.isSymbolicLink()) {
        if (!this.entries.has(next.slice(1))) this.entries.set(next.slice(1), { kind: 'symlink', target: readlinkSync(next) });
        current = this.ensureDir(realpathSync(next));
      } else {
        if (!this.entries.has(next.slice(1))) this.entries.set(next.slice(1), { kind: 'dir', mode: statSync(next).mode & 0o7777 });
        current = next;
      }
    }
    return current;
  }

  /** A tar stream of everything, plus the given files and empty directories. */
  pack(files: Record<string, string>, emptyDirs: string[]): NodeJS.ReadableStream {
    const pack = tar.pack();
    const entries = [...this.entries.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    void (async () => {
      try {
        for (const dir of emptyDirs) if (!this.entries.has(dir)) pack.entry({ name: dir, type: 'directory', mode: dir === 'tmp' ? 0o1777 : 0o755 });
        if (!this.entries.has('etc')) pack.entry({ name: 'etc', type: 'directory', mode: 0o755 });
        for (const [name, text] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, text);
        for (const [name, entry] of entries) {
          if (entry.kind === 'dir') pack.entry({ name, type: 'directory', mode: entry.mode });
          else if (entry.kind === 'symlink') pack.entry({ name, type: 'symlink', linkname: entry.target });
          else await copyFile(pack, name, entry);
        }
        pack.finalize();
      } catch (error) {
        pack.destroy(error as Error);
      }
    })();
    return pack as unknown as NodeJS.ReadableStream;
  }
}

function copyFile(pack: tar.Pack, name: string, entry: { mode: number; size: number; source: string }): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const sink = pack.entry({ name, mode: entry.mode, size: entry.size }, (error) => (error ? reject(error) : resolvePromise()));
    createReadStream(entry.source).on('error', reject).pipe(sink);
  });
}
