import { accessSync, constants } from 'node:fs';
import { join, resolve } from 'node:path';
import { UnavailableError } from '../errors/index.js';
import { createWorkerCgroup, detectLayout, limitReason, listWorkerCgroups, removeCgroup, signalCgroup, workerSegments, type CgroupLayout } from './cgroup-fs.js';
import { formatBytes } from './limits.js';
import { ProcessIsolate } from './process.js';
import type { ExitInfo, Isolate, OutputStream, ResourceLimits, SpawnSpec, WorkerPaths, WorkerProcess } from './types.js';

export interface CgroupIsolateOptions {
  /** Directory for bookkeeping that outlives a crashed engine (pid records under `<runDir>/cgroup`). */
  runDir: string;
  engineId: string;
  /** Where the cgroup file systems are mounted. */
  root?: string;
  /** Cgroup path under which `cocaine/` is created; default: see detectLayout. */
  parent?: string;
}

/**
 * The worker writes its own pid into every cgroup.procs and only then execs the command, so no
 * instruction of app code runs outside its limits. Arguments: count, the procs files, command, args.
 */
const JOIN_THEN_EXEC =
  'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || { echo "cocaine: cannot join cgroup $1" >&2; exit 126; }; shift; n=$((n-1)); done; exec "$@"';

/**
 * Workers as processes (each in its own process group, exactly the spec's environment) inside a
 * cgroup per worker, `cocaine/<engineId>/<app>/<workerId>`, bounded by the profile's limits.
 * Started and tracked by a ProcessIsolate (output lines, pid records); this class adds the cgroup.
 */
export class CgroupIsolate implements Isolate {
  readonly type = 'cgroup';
  readonly layout: CgroupLayout;
  private readonly processes: ProcessIsolate;
  private readonly live = new Map<string, CgroupWorker>();

  constructor(private readonly options: CgroupIsolateOptions) {
    if (!options.runDir) throw new UnavailableError('spawn_failed', 'CgroupIsolate options.runDir must be a directory path');
    if (!options.engineId) throw new UnavailableError('spawn_failed', 'CgroupIsolate options.engineId must be a non-empty id');
    this.layout = detectLayout(options.root, options.parent);
    this.processes = new ProcessIsolate({ runDir: join(options.runDir, 'cgroup'), engineId: options.engineId });
  }

  workerPaths(spec: { appDir: string; socketDir: string; pluginDir: string; workerId: string }): WorkerPaths {
    return this.processes.workerPaths(spec);
  }

  async spawn(spec: SpawnSpec): Promise<WorkerProcess> {
    // The wrapper shell always starts; a missing command must still fail the spawn, not the worker.
    assertExecutable(spec);
    const segments = workerSegments(this.options.engineId, spec.app, spec.workerId);
    const dirs = createWorkerCgroup(this.layout, segments, spec.limits);
    let inner: WorkerProcess;
    try {
      inner = await this.processes.spawn({
        ...spec,
        command: '/bin/sh',
        args: ['-c', JOIN_THEN_EXEC, 'sh', String(dirs.length), ...dirs.map((dir) => join(dir, 'cgroup.procs')), spec.command, ...spec.args],
      });
    } catch (error) {
      await Promise.all(dirs.map((dir) => removeCgroup(dir)));
      throw error;
    }
    const worker: CgroupWorker = new CgroupWorker(inner, dirs, (info) => this.finish(worker, info, spec.limits));
    this.live.set(segments[2]!, worker);
    return worker;
  }

  async cleanupOrphans(engineId?: string): Promise<void> {
    await this.processes.cleanupOrphans(engineId);
    for (const base of this.layout.bases) {
      for (const found of listWorkerCgroups(base.dir, engineId)) {
        if (found.engineId === workerSegments(this.options.engineId, 'a', 'w')[0] && this.live.has(found.workerId)) continue;
        await removeCgroup(found.dir);
      }
    }
  }

  async close(): Promise<void> {
    const workers = [...this.live.values()];
    for (const worker of workers) worker.signal('SIGKILL');
    await Promise.all(workers.map((worker) => worker.exited));
    await this.processes.close();
  }

  /** After the worker's exit: what limit it hit, then its cgroups (and any process left in them) go. */
  private async finish(worker: CgroupWorker, info: ExitInfo, limits: ResourceLimits): Promise<ExitInfo> {
    const reason = limitReason(this.layout, worker.dirs, limits, formatBytes);
    await Promise.all(worker.dirs.map((dir) => removeCgroup(dir)));
    for (const [key, value] of this.live) if (value === worker) this.live.delete(key);
    return reason ? { ...info, reason } : info;
  }
}

class CgroupWorker implements WorkerProcess {
  readonly workerId: string;
  readonly pid?: number;
  readonly exited: Promise<ExitInfo>;
  private done = false;

  constructor(
    private readonly inner: WorkerProcess,
    readonly dirs: string[],
    finish: (info: ExitInfo) => Promise<ExitInfo>,
  ) {
    this.workerId = inner.workerId;
    this.pid = inner.pid;
    this.exited = inner.exited.then(finish).finally(() => {
      this.done = true;
    });
  }

  onOutput(listener: (stream: OutputStream, line: string) => void): void {
    this.inner.onOutput(listener);
  }

  onOutputData(listener: (stream: OutputStream, chunk: Buffer) => void): void {
    this.inner.onOutputData(listener);
  }

  signal(signal: 'SIGTERM' | 'SIGKILL'): void {
    if (this.done) return;
    this.inner.signal(signal);
    // Also whatever left the process group (setsid) but not the cgroup.
    signalCgroup(this.dirs[0]!, signal);
  }
}

/** Fails like a direct spawn would when the command cannot be executed. */
function assertExecutable(spec: SpawnSpec): void {
  const candidates = spec.command.includes('/')
    ? [resolve(spec.appDir, spec.command)]
    : (spec.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':').filter(Boolean).map((dir) => join(resolve(spec.appDir, dir), spec.command));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return;
    } catch {
      // Next.
    }
  }
  const code = spec.command.includes('/') ? 'ENOENT or not executable' : 'ENOENT (not found on the spec PATH)';
  throw new UnavailableError('spawn_failed', `cannot start worker ${spec.workerId} of app "${spec.app}": command '${spec.command}' failed: ${code}`);
}
