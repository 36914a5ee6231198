import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../engine/util/paths.js';

export const ROOT = packageRoot();
export const ENGINE_MAIN = join(ROOT, 'dist/engine/main.js');
export const CLI_MAIN = join(ROOT, 'dist/deploy-cli/main.js');
export const EXAMPLES = join(ROOT, 'examples');

export interface RunningEngine {
  address: string;
  dataDir: string;
  process: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** SIGTERM and wait for exit (graceful). */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartEngineOptions {
  dataDir?: string;
  args?: string[];
  env?: Record<string, string>;
  /** Flags for node itself (e.g. --cpu-prof), before the engine's script. */
  nodeArgs?: string[];
  /** Remove the data dir when stopped (default: only when we created it). */
  keepData?: boolean;
}

const running = new Set<RunningEngine>();

const tempDirs: string[] = [];
process.once('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A temporary directory removed when the test process exits. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `cocaine-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}

/** Starts a real engine process on a free loopback port; resolves when it listens. */
export async function startEngine(options: StartEngineOptions = {}): Promise<RunningEngine> {
  if (!existsSync(ENGINE_MAIN)) throw new Error(`${ENGINE_MAIN} is missing: run npm run build first`);
  const dataDir = options.dataDir ?? tempDir('data');
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ENGINE_MAIN, '--listen', '127.0.0.1:0', '--data', dataDir, '--log-level', 'warn', ...(options.args ?? [])], {
    env: { ...process.env, COCAINE_DRAIN_TIMEOUT_MS: '3000', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const address = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`engine did not start in 20s: ${stderr.join('')}`)), 20_000);
    child.stdout!.on('data', (data: Buffer) => {
      buffer += data.toString();
      stdout.push(data.toString());
      const match = /listening on (\S+)/.exec(buffer);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.stderr!.on('data', (data: Buffer) => stderr.push(data.toString()));
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`engine exited (code ${code}, signal ${signal}) before listening: ${stderr.join('')}`));
    });
  });
  const engine: RunningEngine = {
    address,
    dataDir,
    process: child,
    stdout,
    stderr,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const result = await exited;
      running.delete(engine);
      if (!options.dataDir && !options.keepData) rmSync(dataDir, { recursive: true, force: true });
      return result;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      running.delete(engine);
    },
  };
  running.add(engine);
  return engine;
}

/** Stops every engine a test file started (call in afterAll). */
export async function stopAllEngines(): Promise<void> {
  await Promise.all([...running].map((engine) => engine.stop()));
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Runs `cocaine-deploy` as a user would. */
export function cli(engine: { address: string } | undefined, args: string[], input?: Buffer | string): Promise<CliResult> {
  const fullArgs = engine ? ['--engine', engine.address, ...args] : args;
  const child = spawn(process.execPath, [CLI_MAIN, ...fullArgs], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (data: Buffer) => out.push(data));
  child.stderr.on('data', (data: Buffer) => err.push(data));
  if (input !== undefined) child.stdin.end(input);
  else child.stdin.end();
  return new Promise((resolve) =>
    child.once('close', (code) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, stdout: stdoutBytes.toString(), stderr: Buffer.concat(err).toString(), stdoutBytes });
    }),
  );
}

/** Runs the CLI with --json and parses stdout; throws with stderr when it failed. */
export async function cliJson<T = unknown>(engine: { address: string }, args: string[], input?: Buffer | string): Promise<T> {
  const result = await cli(engine, ['--json', ...args], input);
  if (result.code !== 0) throw new Error(`cocaine-deploy ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

/** Live processes whose environment names this engine's data or the given worker marker. */
/**
 * Pids whose environment contains `marker`; with `parent`, only that process's children (an
 * engine's workers, not another engine's on the same machine).
 */
export function processesWithEnv(marker: string, parent?: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (!environ.includes(marker)) continue;
      if (parent !== undefined && parentPid(Number(entry)) !== parent) continue;
      pids.push(Number(entry));
    } catch {
      // exited meanwhile, or not ours to read
    }
  }
  return pids;
}

function parentPid(pid: number): number | undefined {
  // /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
