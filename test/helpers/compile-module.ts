import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REPO = resolve(import.meta.dirname, '../..');

/**
 * Compiles one engine module (e.g. `engine/queue/local.ts`) and its imports alone into a private
 * directory under node_modules/.cache (so its npm dependencies resolve from there), for child
 * processes that run plain node. Independent of dist/ being fresh or of the rest of the tree.
 */
export async function compileModule(source: string): Promise<{ modulePath: string; outDir: string }> {
  const cache = join(REPO, 'node_modules', '.cache');
  await mkdir(cache, { recursive: true });
  const outDir = await mkdtemp(join(cache, 'module-test-'));
  const tsc = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
  const args = [
    tsc,
    '--outDir', outDir,
    '--rootDir', REPO,
    '--module', 'NodeNext',
    '--moduleResolution', 'NodeNext',
    '--target', 'ES2022',
    '--strict',
    '--skipLibCheck',
    '--types', 'node',
    join(REPO, source),
  ];
  await run(process.execPath, args, { cwd: REPO });
  const modulePath = join(outDir, source.replace(/\.ts$/, '.js'));
  if (!existsSync(modulePath)) throw new Error(`tsc did not emit ${modulePath}`);
  return { modulePath, outDir };
}
