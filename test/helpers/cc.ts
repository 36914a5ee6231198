/**
 * C toolchain helpers for the native plugin's tests and benches: compiles a native app with the
 * real `cc`, and makes sure the compiled native host (dist/plugins/native/runtime/host.js) is
 * up to date with its sources.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { distPath, packageRoot } from '../../engine/util/paths.js';

const run = promisify(execFile);

/** The native ABI header directory (holding cocaine/worker.h). */
export function nativeIncludeDir(): string {
  return join(packageRoot(), 'plugins/native/include');
}

/**
 * `cc -shared -fPIC -O2 -Wall -Werror -I<includeDir> -o outFile sourceFile`; rejects with the
 * compiler's output when it fails (or when there is no `cc`: tests must fail, not skip).
 */
export async function compileSharedObject(sourceFile: string, outFile: string, includeDir = nativeIncludeDir()): Promise<void> {
  // Compiled aside, then renamed: test files running in parallel may pack the app meanwhile.
  const partial = `${outFile}.${process.pid}.${Date.now()}.tmp`;
  try {
    await run('cc', ['-shared', '-fPIC', '-O2', '-Wall', '-Werror', `-I${includeDir}`, '-o', partial, sourceFile]);
    await rename(partial, outFile);
  } catch (error) {
    await rm(partial, { force: true });
    const failure = error as Error & { stderr?: string };
    throw new Error(`cc failed to compile ${sourceFile}: ${failure.stderr || failure.message}`);
  }
}

/**
 * The compiled native host, as workers run it. `npm test` builds first; when the build is missing
 * or older than the host's sources (vitest alone), they are compiled into dist/ as `npm run build` does.
 */
export function nativeRuntimeHost(): string {
  const host = distPath('plugins/native/runtime/host.js');
  const root = packageRoot();
  const sourcesDir = join(root, 'plugins/native/runtime');
  const sources = [
    ...readdirSync(sourcesDir).filter((file) => file.endsWith('.ts')).map((file) => join(sourcesDir, file)),
    join(root, 'engine/protocol/frames.ts'),
  ];
  const built = existsSync(host) ? statSync(host).mtimeMs : 0;
  if (sources.some((source) => statSync(source).mtimeMs > built)) {
    execFileSync(
      process.execPath,
      [
        join(root, 'node_modules/typescript/bin/tsc'),
        '--outDir', join(root, 'dist'), '--rootDir', root,
        '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--lib', 'ES2023',
        '--types', 'node', '--strict', '--skipLibCheck', '--esModuleInterop', '--sourceMap',
        ...sources,
      ],
      { cwd: root, stdio: 'inherit' },
    );
  }
  return host;
}
