/** Resource limits from the profile's `isolate.args`, normalised. Undefined = unlimited. */
export interface ResourceLimits {
  /** Bytes of memory (RSS + page cache charged to the worker). */
  memoryBytes?: number;
  /** CPU quota in cores (0.5 = half a core). */
  cpus?: number;
  /** Relative CPU weight, 1..10000 (cgroup v2 weight; v1 shares are derived). */
  cpuWeight?: number;
  /** Max number of processes/threads. */
  pids?: number;
}

/** Paths as the worker sees them (inside a container they differ from the host's). */
export interface WorkerPaths {
  appDir: string;
  endpoint: string;
  pluginDir: string;
}

export interface SpawnSpec {
  workerId: string;
  app: string;
  command: string;
  args: string[];
  /** The worker's whole environment: nothing of the engine's leaks in. */
  env: Record<string, string>;
  /** Host paths. */
  appDir: string;
  socketDir: string;
  pluginDir: string;
  limits: ResourceLimits;
  /** Isolate-specific arguments from the profile (e.g. docker image, network). */
  isolateArgs: Record<string, unknown>;
  /**
   * Called once, just before the process itself is started (after preparation such as creating
   * a container): the engine counts startup-timeout from here.
   */
  onStart?(): void;
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  /** Isolate's explanation when it knows more, e.g. `out of memory (limit 64 MiB)`. */
  reason?: string;
}

export type OutputStream = 'stdout' | 'stderr';

export interface WorkerProcess {
  readonly workerId: string;
  /** Host pid when there is one. */
  readonly pid?: number;
  /** Resolves once the process is gone and reaped (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** Called for every complete output line (and a last unterminated one at exit). */
  onOutput(listener: (stream: OutputStream, line: string) => void): void;
  /** Called for every raw chunk of output, as read: no per-line work (the engine's hot path). */
  onOutputData(listener: (stream: OutputStream, chunk: Buffer) => void): void;
  /** Sends a signal to the worker and everything it started. */
  signal(signal: 'SIGTERM' | 'SIGKILL'): void;
}

/**
 * How workers are started and bounded. Every implementation passes
 * test/contracts/isolate.contract.ts.
 */
export interface Isolate {
  readonly type: string;
  /** Where the worker will see the host paths. */
  workerPaths(spec: { appDir: string; socketDir: string; pluginDir: string; workerId: string }): WorkerPaths;
  spawn(spec: SpawnSpec): Promise<WorkerProcess>;
  /** Removes what a previous engine with this id (or any, when omitted) left behind. */
  cleanupOrphans(engineId?: string): Promise<void>;
  close(): Promise<void>;
}

export interface IsolateFactoryContext {
  engineId: string;
  runDir: string;
}
