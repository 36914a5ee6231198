/**
 * Finds the real interpreter binary for a language plugin, once per process.
 *
 * Why not just `python3`: PATH often leads to a version-manager shim (pyenv, asdf), a shell script
 * that re-resolves the interpreter on every start. pyenv's costs ~150 ms per worker spawn, more
 * than the interpreter's own start. So the system binary comes first, shims are skipped, and the
 * result is the candidate's realpath (a symlink chain is followed once, here, not per spawn).
 */
import { execFileSync } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readSync, realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { UnavailableError } from '../engine/errors/index.js';

export type InterpreterName = 'python3' | 'perl';

/** Oldest Python the runtime supports. */
export const MIN_PYTHON: readonly [number, number] = Object.freeze([3, 9] as [number, number]);

const PREFERRED_DIRS = Object.freeze(['/usr/bin', '/usr/local/bin', '/bin']);
const cache = new Map<string, string>();

/**
 * Absolute real path of `python3` (version ≥ 3.9, checked by running it once) or `perl`.
 * `candidates` replaces the default search (/usr/bin, /usr/local/bin, /bin, then PATH without
 * shim directories). Throws UnavailableError (spawn_failed) naming every candidate rejected and why.
 */
export function resolveInterpreter(name: InterpreterName, candidates?: string[]): string {
  const key = `${name}\0${candidates?.join('\0') ?? ''}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const list = candidates ?? defaultCandidates(name, process.env.PATH ?? '');
  const rejected: string[] = [];
  for (const candidate of list) {
    const problem = candidateProblem(name, candidate);
    if (typeof problem === 'string') {
      if (problem !== 'missing') rejected.push(`${candidate}: ${problem}`);
      continue;
    }
    cache.set(key, problem.path);
    return problem.path;
  }
  const need = name === 'python3' ? `a python3 of version ${MIN_PYTHON.join('.')} or newer` : 'perl';
  const where = candidates ? candidates.join(', ') : `${PREFERRED_DIRS.join(', ')} and PATH (version-manager shims skipped)`;
  const why = rejected.length > 0 ? `; found but rejected: ${rejected.join('; ')}` : '; none found';
  throw new UnavailableError('spawn_failed', `cannot find ${need}: looked in ${where}${why}`);
}

function defaultCandidates(name: InterpreterName, path: string): string[] {
  const dirs: string[] = [...PREFERRED_DIRS];
  for (const dir of path.split(delimiter)) {
    if (dir !== '' && !dirs.includes(dir) && !/(^|\/)shims?(\/|$)/.test(dir)) dirs.push(dir);
  }
  return dirs.map((dir) => join(dir, name));
}

/** `{ path }` (the realpath) when the candidate fits; else `'missing'` or why it was rejected. */
function candidateProblem(name: InterpreterName, candidate: string): { path: string } | string {
  let real: string;
  try {
    accessSync(candidate, constants.X_OK);
    real = realpathSync(candidate);
  } catch {
    return 'missing';
  }
  if (/(^|\/)shims?\//.test(real) || startsWithShebang(real)) return `${real} is a shim script, not an interpreter`;
  if (name === 'python3') {
    const problem = pythonProblem(real);
    if (problem) return problem;
  }
  return { path: real };
}

function startsWithShebang(path: string): boolean {
  const head = Buffer.alloc(2);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, 2, 0);
  } finally {
    closeSync(fd);
  }
  return head.toString('latin1') === '#!';
}

/** Runs the candidate once: undefined when it is a python3 new enough, else why not. */
function pythonProblem(path: string): string | undefined {
  let output: string;
  try {
    output = execFileSync(path, ['-I', '-S', '-c', 'import sys;print(sys.version_info[:2])'], {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (error) {
    return `does not run (${(error as Error).message.split('\n')[0]})`;
  }
  const match = /^\((\d+), (\d+)\)$/.exec(output);
  if (!match) return `printed ${JSON.stringify(output)} instead of its version`;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  if (major > MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor >= MIN_PYTHON[1])) return undefined;
  return `version ${major}.${minor} is older than ${MIN_PYTHON.join('.')}`;
}
