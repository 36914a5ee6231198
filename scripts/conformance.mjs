#!/usr/bin/env node
// Runs the conformance kit (test/conformance/) against one plugin and its conformance app:
//   npm run conformance -- --plugin ruby --app path/to/ruby-conformance --plugins-dir path/to/my-plugins
// docs/plugin-authors.md describes the checks and every flag (--help lists them).
//
// dist/ is rebuilt only when a source is newer than its output, and never rewritten in place: the
// build goes to a private directory and only changed files move into dist/, each by an atomic
// rename, so an engine running from the same checkout keeps its files (it crashed on a
// half-written module when this script ran `npm run build`).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = `usage: npm run conformance -- --plugin NAME --app DIR [options]

  --plugin NAME          the plugin's name, as manifests write it
  --app DIR              the conformance app (a directory with manifest.yaml)
  --plugins-dir DIR      where the plugin lives, if not built in: a directory of plugins, one
                         subdirectory each (give its parent, not the plugin's own folder)
  --isolate TYPE         process (default), cgroup or docker, for the engine checks
  --image NAME           the image for --isolate docker (it needs your runtime's interpreter)
  --docker-socket PATH   dockerd's socket for --isolate docker (default /var/run/docker.sock)
  --serial | --parallel  also require the handshake to declare concurrency 1 | 0 (by default
                         the kit reads the declared concurrency and checks the runtime keeps it)
  --keep-going           run every group even after one failed (default: stop at the first
                         failing group)
  --slow N               multiply the kit's timeouts by N (slow machines, containers)
  --build-only           only bring dist/ up to date, then exit
`;

const { values } = parseArgs({
  options: {
    plugin: { type: 'string' },
    app: { type: 'string' },
    'plugins-dir': { type: 'string' },
    isolate: { type: 'string', default: 'process' },
    image: { type: 'string' },
    'docker-socket': { type: 'string' },
    serial: { type: 'boolean', default: false },
    parallel: { type: 'boolean', default: false },
    'keep-going': { type: 'boolean', default: false },
    slow: { type: 'string', default: '1' },
    'build-only': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});

function usage(problem) {
  if (problem) process.stderr.write(`conformance: ${problem}\n\n`);
  process.stderr.write(USAGE);
  process.exit(problem ? 1 : 0);
}

if (values.help) usage();
if (!values['build-only']) {
  if (!values.plugin) usage('--plugin is required');
  if (!values.app) usage('--app is required');
  if (!existsSync(join(values.app, 'manifest.yaml'))) usage(`--app ${values.app}: no manifest.yaml there`);
  if (values.serial && values.parallel) usage('--serial and --parallel exclude each other');
  if (!['process', 'cgroup', 'docker'].includes(values.isolate)) usage(`--isolate must be process, cgroup or docker (got "${values.isolate}")`);
  if (values.isolate === 'docker' && !values.image) usage('--isolate docker needs --image (an image with your runtime\'s interpreter)');
  if (!(Number(values.slow) >= 1)) usage(`--slow must be a number ≥ 1 (got "${values.slow}")`);
}

ensureBuilt();
if (values['build-only']) process.exit(0);

const env = {
  ...process.env,
  COCAINE_CONFORMANCE_PLUGIN: values.plugin,
  COCAINE_CONFORMANCE_APP: resolve(values.app),
  COCAINE_CONFORMANCE_PLUGINS_DIR: values['plugins-dir'] ? resolve(values['plugins-dir']) : '',
  COCAINE_CONFORMANCE_ISOLATE: values.isolate,
  COCAINE_CONFORMANCE_IMAGE: values.image ?? '',
  COCAINE_CONFORMANCE_DOCKER_SOCKET: values['docker-socket'] ?? '',
  COCAINE_CONFORMANCE_SESSIONS: values.serial ? 'serial' : values.parallel ? 'parallel' : '',
  COCAINE_CONFORMANCE_KEEP_GOING: values['keep-going'] ? '1' : '',
  COCAINE_CONFORMANCE_SLOW: values.slow,
};
// The verbose reporter prints every check by name with its outcome.
const result = spawnSync('npx', ['vitest', 'run', 'test/conformance/external.test.ts', '--reporter=verbose'], { cwd: root, stdio: 'inherit', env });
process.exit(result.status ?? 1);

/** Source .ts files tsc compiles (tsconfig.json "include"), with their dist/ output paths. */
function sources() {
  const config = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8'));
  const tops = config.include.map((pattern) => pattern.split('/')[0]);
  const found = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) found.push(path);
    }
  };
  for (const top of new Set(tops)) if (existsSync(join(root, top))) walk(join(root, top));
  return found.map((source) => ({ source, output: join(root, 'dist', relative(root, source).replace(/\.ts$/, '.js')) }));
}

function stale() {
  const tsconfig = statSync(join(root, 'tsconfig.json')).mtimeMs;
  return sources().filter(({ source, output }) => {
    if (!existsSync(output)) return true;
    const built = statSync(output).mtimeMs;
    return built < statSync(source).mtimeMs || built < tsconfig;
  });
}

function ensureBuilt() {
  const outdated = stale();
  if (outdated.length === 0) {
    process.stderr.write('conformance: dist/ is up to date\n');
    return;
  }
  process.stderr.write(`conformance: ${outdated.length} source file(s) newer than dist/, building...\n`);
  // A sibling of dist/: source maps name their sources relative to the output, so only an
  // output directory at dist/'s depth builds maps identical to dist/'s.
  const out = mkdtempSync(join(root, '.dist-conformance-'));
  try {
    const tsc = spawnSync('npx', ['tsc', '-p', 'tsconfig.json', '--outDir', out], { cwd: root, stdio: 'inherit' });
    if (tsc.status !== 0) throw Object.assign(new Error('the build failed'), { status: tsc.status ?? 1 });
    let replaced = 0;
    const now = new Date();
    const staleOutputs = new Set(outdated.map(({ output }) => output));
    const install = (dir) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const built = join(dir, entry.name);
        if (entry.isDirectory()) {
          install(built);
          continue;
        }
        const target = join(root, 'dist', relative(out, built));
        if (existsSync(target) && readFileSync(target).equals(readFileSync(built))) {
          if (staleOutputs.has(target)) utimesSync(target, now, now); // same content: only marked current
          continue;
        }
        mkdirSync(dirname(target), { recursive: true });
        const temporary = `${target}.${process.pid}.tmp`;
        copyFileSync(built, temporary);
        renameSync(temporary, target); // atomic: a running engine sees the old file or the new one
        replaced++;
      }
    };
    install(out);
    process.stderr.write(`conformance: dist/ updated (${replaced} file(s) replaced)\n`);
  } catch (error) {
    process.stderr.write(`conformance: ${error.message}\n`);
    process.exitCode = error.status ?? 1;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  if (process.exitCode) process.exit();
}
