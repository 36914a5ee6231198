import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REPO = resolve(import.meta.dirname, '../..');

/**
 * Compiles engine/queue/local.ts and its imports alone into a private directory under
 * node_modules/.cache (so `lmdb` resolves from there), for child processes that run plain node.
 * It does not depend on dist/ being fresh or on the rest of the tree compiling.
 */
export async function compileLocalQueue(): Promise<{ modulePath: string; outDir: string }> {
  const cache = join(REPO, 'node_modules', '.cache');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(cache, { recursive: true });
  const outDir = await mkdtemp(join(cache, 'queue-test-'));
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
    join(REPO, 'engine/queue/local.ts'),
  ];
  await run(process.execPath, args, { cwd: REPO });
  const modulePath = join(outDir, 'engine/queue/local.js');
  if (!existsSync(modulePath)) throw new Error(`tsc did not emit ${modulePath}`);
  return { modulePath, outDir };
}
