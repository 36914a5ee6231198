// Installs npm dependencies when they are missing or older than package.json, so that
// `npm start` and `npm test` work on a fresh clone. Uses `npm install` (not `npm ci`): the
// registry here lacks other platforms' optional packages that a lock file may name.
import { existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const marker = join(root, 'node_modules', '.package-lock.json');
const manifest = join(root, 'package.json');
const fresh = existsSync(marker) && statSync(marker).mtimeMs >= statSync(manifest).mtimeMs;
if (!fresh) {
  process.stderr.write('installing npm dependencies...\n');
  const result = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
