import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UnavailableError } from '../errors/index.js';
import { OutputFanout } from './output-lines.js';
import { PidRegistry, killGroup, processStartTime } from './pid-registry.js';
import type { ExitInfo, Isolate, OutputStream, SpawnSpec, WorkerPaths, WorkerProcess } from './types.js';

export interface ProcessIsolateOptions {
  /** Directory for bookkeeping that outlives a crashed engine (pid records). */
  runDir: string;
  engineId: string;
}

/** Bytes kept for the first listener when output comes before anyone listens. */
const EARLY_BYTES = 1024 * 1024;
/** How long a dead worker's pipes may stay open (held by something it left) before we stop reading. */
const PIPE_GRACE_MS = 1000;

/**
 * Workers as plain processes of the engine's user, each in its own process group (so a signal
 * reaches everything it started), with exactly the environment of the spec.
 */
export class ProcessIsolate implements Isolate {
  readonly type = 'process';
  private readonly registry: PidRegistry;
  private readonly live = new Set<ProcessWorker>();

  constructor(private readonly options: ProcessIsolateOptions) {
    if (!options.runDir) throw new UnavailableError('spawn_failed', 'ProcessIsolate options.runDir must be a directory path');
    if (!options.engineId) throw new UnavailableError('spawn_failed', 'ProcessIsolate options.engineId must be a non-empty id');
    this.registry = new PidRegistry(options.runDir);
  }

  workerPaths(spec: { appDir: string; socketDir: string; pluginDir: string; workerId: string }): WorkerPaths {
    return { appDir: spec.appDir, endpoint: join(spec.socketDir, `${spec.workerId}.sock`), pluginDir: spec.pluginDir };
  }

  async spawn(spec: SpawnSpec): Promise<WorkerProcess> {
    const what = `worker ${spec.workerId} of app "${spec.app}"`;
    if (!existsSync(spec.appDir)) {
      throw new UnavailableError('spawn_failed', `cannot start ${what}: the app directory ${spec.appDir} does not exist`);
    }
    spec.onStart?.();
    const child = spawn(spec.command, spec.args, {
      cwd: spec.appDir,
      env: spec.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (error: NodeJS.ErrnoException) => {
        reject(new UnavailableError('spawn_failed', `cannot start ${what}: command '${spec.command}' failed: ${error.code ?? error.message}`, { cause: error }));
      });
    });
    const pid = child.pid!;
    const startTime = processStartTime(pid);
    if (startTime !== undefined) {
      this.registry.record({ pid, pgid: pid, workerId: spec.workerId, engineId: this.options.engineId, startTime });
    }
    const worker = new ProcessWorker(spec.workerId, child, () => {
      this.registry.remove(spec.workerId);
      this.live.delete(worker);
    });
    this.live.add(worker);
    return worker;
  }

  async cleanupOrphans(engineId?: string): Promise<void> {
    // Our own live workers are not orphans, whatever the engine id asked for.
    this.registry.cleanupOrphans(engineId, new Set([...this.live].map((worker) => worker.workerId)));
  }

  async close(): Promise<void> {
    const workers = [...this.live];
    for (const worker of workers) worker.signal('SIGKILL');
    await Promise.all(workers.map((worker) => worker.exited));
  }
}

class ProcessWorker implements WorkerProcess {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  private readonly output = new OutputFanout(EARLY_BYTES);
  private done = false;
  private reaped = false;

  constructor(
    readonly workerId: string,
    child: ChildProcess,
    onGone: () => void,
  ) {
    this.pid = child.pid!;
    child.stdout!.on('data', (data: Buffer) => this.output.deliver('stdout', data));
    child.stderr!.on('data', (data: Buffer) => this.output.deliver('stderr', data));
    this.exited = new Promise<ExitInfo>((resolve) => {
      let graceTimer: NodeJS.Timeout | undefined;
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.done) return;
        this.done = true;
        clearTimeout(graceTimer);
        this.output.end();
        onGone();
        resolve({ code, signal });
      };
      child.once('exit', (code, signal) => {
        this.reaped = true;
        // The worker's group dies with it: nothing it started may outlive it.
        killGroup(this.pid);
        graceTimer = setTimeout(() => {
          child.stdout!.destroy();
          child.stderr!.destroy();
          finish(code, signal);
        }, PIPE_GRACE_MS);
      });
      // 'close' = reaped and both pipes closed.
      child.once('close', (code, signal) => finish(code, signal));
    });
  }

  onOutput(listener: (stream: OutputStream, line: string) => void): void {
    this.output.listenLines(listener);
  }

  onOutputData(listener: (stream: OutputStream, chunk: Buffer) => void): void {
    this.output.listen(listener);
  }

  signal(signal: 'SIGTERM' | 'SIGKILL'): void {
    // Once reaped, the pid (and group id) may belong to someone else.
    if (this.reaped) return;
    killGroup(this.pid, signal);
  }

}
