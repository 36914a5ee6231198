import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { distPath, packageRoot } from '../../engine/util/paths.js';

/**
 * The compiled Node runtime (dist/plugins/node/runtime/host.js), as workers run it. `npm test`
 * builds first; when the build is missing or older than the runtime's sources (a run of vitest
 * alone), the runtime's own files are compiled into dist/ the way `npm run build` does.
 */
export function nodeRuntimeHost(): string {
  const host = distPath('plugins/node/runtime/host.js');
  const root = packageRoot();
  const sourcesDir = join(root, 'plugins/node/runtime');
  const protocolDir = join(root, 'engine/protocol');
  const sources = [
    ...readdirSync(sourcesDir).filter((f) => f.endsWith('.ts')).map((f) => join(sourcesDir, f)),
    ...readdirSync(protocolDir).filter((f) => f.endsWith('.ts')).map((f) => join(protocolDir, f)),
  ];
  const built = existsSync(host) ? statSync(host).mtimeMs : 0;
  if (sources.some((source) => statSync(source).mtimeMs > built)) {
    execFileSync(
      process.execPath,
      [
        join(root, 'node_modules/typescript/bin/tsc'),
        '--outDir', join(root, 'dist'), '--rootDir', root,
        '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--lib', 'ES2023',
        '--types', 'node', '--strict', '--skipLibCheck', '--sourceMap',
        ...sources,
      ],
      { cwd: root, stdio: 'inherit' },
    );
  }
  return host;
}
