import { randomUUID } from 'node:crypto';
import type { AppCounters, AppRuntimeInfo, AppState, InvocationRequest } from '../api/facade.js';
import type { Manifest, Profile } from '../../manifests/types.js';
import type { Plugin } from '../../plugins/types.js';
import { EngineError, NotFoundError, OverloadError, UnavailableError } from '../errors/index.js';
import type { Isolate, ResourceLimits } from '../isolate/types.js';
import type { CrashlogEntry } from '../storage/types.js';
import type { ServiceHost } from '../worker/service-channels.js';
import { Worker, type WorkerExit } from '../worker/worker.js';
import type { AppLogs } from './app-logs.js';
import { PooledInvocation, type InvocationOutcome } from './invocation.js';
import { respawnDelayMs } from './backoff.js';
import { setLongTimeout } from '../util/timers.js';

export interface AppEngineOptions {
  app: string;
  manifest: Manifest;
  profile: Profile;
  profileName: string;
  plugin: Plugin;
  isolate: Isolate;
  limits: ResourceLimits;
  socketDir: string;
  logs: AppLogs;
  /** Unpacks the app (once) and returns its host directory. */
  prepareAppDir(): Promise<string>;
  saveCrashlog(entry: CrashlogEntry): Promise<void>;
  /** Serves version-2 workers' service requests and log records. */
  services?: ServiceHost;
}

type EngineState = 'running' | 'broken' | 'stopping' | 'stopped';

/**
 * One app's engine: its queue of sessions waiting for a worker, its pool of workers, and the
 * Cocaine rules for growing (queue depth over grow-threshold), shrinking (idle-timeout),
 * respawning with backoff, and declaring the app broken when it cannot start.
 */
export class AppEngine {
  private state: EngineState = 'running';
  private brokenReason = '';
  private readonly pending = new Set<PooledInvocation>();
  private readonly workers = new Set<Worker>();
  private starting = 0;
  private startFailures = 0;
  private crashStreak = 0;
  private nextSpawnAt = 0;
  private respawnTimer: NodeJS.Timeout | undefined;
  private readonly idleTimer: NodeJS.Timeout | undefined;
  private readonly deadlineSweep: NodeJS.Timeout;
  private readonly inFlight = new Set<PooledInvocation>();
  private drainWaiters: Array<() => void> = [];
  readonly counters: AppCounters = { accepted: 0, completed: 0, failed: 0, rejected: 0, timeouts: 0, crashes: 0, spawned: 0 };

  constructor(private readonly options: AppEngineOptions) {
    this.deadlineSweep = setInterval(() => {
      const now = Date.now();
      for (const invocation of this.inFlight) invocation.checkDeadline(now);
    }, 1_000);
    this.deadlineSweep.unref();
    const idleMs = options.profile['idle-timeout'] * 1000;
    if (idleMs > 0) {
      this.idleTimer = setInterval(() => this.shrinkIdle(idleMs), Math.min(1_000, Math.max(20, idleMs / 4)));
      this.idleTimer.unref();
    }
  }

  get name(): string {
    return this.options.app;
  }

  get profileName(): string {
    return this.options.profileName;
  }

  get isStopped(): boolean {
    return this.state === 'stopped' || this.state === 'stopping';
  }

  /** Accepts a call or fails it at once (queue full, broken, unknown event). Never blocks. */
  invoke(request: InvocationRequest): PooledInvocation {
    const { profile, manifest } = this.options;
    const eventTimeout = manifest.events?.[request.event]?.timeout ?? profile['request-timeout'];
    const configured = Date.now() + eventTimeout * 1000;
    const deadline = request.deadline > 0 ? Math.min(request.deadline, configured) : configured;
    const invocation = new PooledInvocation(request, deadline, this.onFinish);
    const refusal = this.refusal(request.event);
    if (refusal) {
      if (refusal.code === 'queue_full') this.counters.rejected++;
      queueMicrotask(() => invocation.fail(refusal));
      return invocation;
    }
    this.counters.accepted++;
    this.inFlight.add(invocation);
    this.pending.add(invocation);
    this.dispatch();
    return invocation;
  }

  private refusal(event: string): EngineError | undefined {
    const { app, manifest, profile } = this.options;
    if (this.state === 'broken') return new UnavailableError('app_broken', `app "${app}" is broken: ${this.brokenReason}`);
    if (this.state !== 'running') return new UnavailableError('app_stopped', `app "${app}" is stopping`);
    if (manifest.events && !Object.hasOwn(manifest.events, event)) {
      return new NotFoundError('event_not_found', `app "${app}" has no event "${event}" (declared: ${Object.keys(manifest.events).join(', ')})`);
    }
    if (this.pending.size >= profile['queue-limit']) {
      return new OverloadError('queue_full', `app "${app}": queue is full (${profile['queue-limit']} calls waiting for a worker, queue-limit)`);
    }
    return undefined;
  }

  private readonly onFinish = (invocation: PooledInvocation, outcome: InvocationOutcome): void => {
    this.pending.delete(invocation);
    if (!this.inFlight.delete(invocation)) return; // refused before acceptance
    if (outcome === 'completed') {
      this.counters.completed++;
      this.crashStreak = 0;
    } else if (outcome === 'timeout') this.counters.timeouts++;
    else if (outcome === 'failed') this.counters.failed++;
    if (this.inFlight.size === 0 && this.drainWaiters.length > 0) {
      for (const resolve of this.drainWaiters.splice(0)) resolve();
    }
  };

  /** Hands waiting calls to the least-loaded workers with room, then grows the pool if needed. */
  private dispatch(): void {
    if (this.pending.size === 0) return;
    for (const invocation of this.pending) {
      if (invocation.isFinished) {
        this.pending.delete(invocation);
        continue;
      }
      const worker = this.pickWorker();
      if (!worker) break;
      this.pending.delete(invocation);
      if (worker.events && !worker.events.has(invocation.request.event)) {
        invocation.fail(new NotFoundError('event_not_found', `app "${this.name}" has no handler for event "${invocation.request.event}"`));
        continue;
      }
      invocation.assign(worker);
    }
    this.grow();
  }

  private pickWorker(): Worker | undefined {
    let best: Worker | undefined;
    for (const worker of this.workers) {
      if (!worker.isActive || worker.load >= worker.capacity) continue;
      if (!best || worker.load < best.load) best = worker;
    }
    return best;
  }

  /** Cocaine's rule: target = clamp(queue / grow-threshold, 1, pool-limit). */
  private grow(): void {
    if (this.state !== 'running' || this.pending.size === 0) return;
    const { profile } = this.options;
    const size = this.poolSize();
    const target = Math.min(profile['pool-limit'], Math.max(1, Math.floor(this.pending.size / profile['grow-threshold'])));
    if (target <= size) return;
    const wait = this.nextSpawnAt - Date.now();
    if (wait > 0) {
      if (!this.respawnTimer) {
        this.respawnTimer = setTimeout(() => {
          this.respawnTimer = undefined;
          this.dispatch();
        }, wait);
      }
      return;
    }
    for (let i = size; i < target; i++) this.spawn();
  }

  /**
   * Workers alive or starting. For pool-limit, less those whose every invocation waits on a
   * handler-to-handler call (they hold no slot, so a handler calling its own app cannot deadlock).
   */
  private poolSize(countWaiting = false): number {
    let alive = 0;
    for (const worker of this.workers) if (!worker.isDead && (countWaiting || !worker.isWaitingOnCalls)) alive++;
    return alive + this.starting;
  }

  private spawn(): void {
    this.starting++;
    this.counters.spawned++;
    const workerId = randomUUID();
    const { logs } = this.options;
    logs.add(workerId, 'engine', `spawning worker ${workerId}`);
    void this.startWorker(workerId).then(
      (worker) => {
        this.starting--;
        this.startFailures = 0;
        logs.add(worker.id, 'engine', `worker ${worker.id} ready (pid ${worker.pid ?? '?'}, ${worker.runtime}, capacity ${worker.capacity})`);
        if (this.state !== 'running' && this.state !== 'stopping') {
          void worker.terminate(`app "${this.name}" stopped`);
          return;
        }
        this.workers.add(worker);
        worker.onExit((exit) => this.onWorkerExit(worker, exit));
        this.dispatch();
      },
      (error: unknown) => {
        this.starting--;
        this.onStartFailure(workerId, error);
      },
    );
  }

  private async startWorker(workerId: string): Promise<Worker> {
    const options = this.options;
    const appDir = await options.prepareAppDir();
    return Worker.start({
      app: options.app,
      workerId,
      plugin: options.plugin,
      isolate: options.isolate,
      manifest: options.manifest,
      profile: options.profile,
      appDir,
      socketDir: options.socketDir,
      limits: options.limits,
      isolateArgs: options.profile.isolate.args,
      onOutputData: (id, stream, chunk) => options.logs.addOutput(id, stream, chunk),
      onChannelClosed: () => this.dispatch(),
      services: options.services,
    });
  }

  private onStartFailure(workerId: string, error: unknown): void {
    const failure = error instanceof EngineError ? error : new UnavailableError('spawn_failed', String((error as Error)?.message ?? error));
    this.counters.crashes++;
    this.startFailures++;
    this.options.logs.add(workerId, 'engine', `start failed: ${failure.message}`);
    const output = (error as { output?: string[] })?.output;
    this.recordCrash(workerId, failure.message, output ?? []);
    if (this.startFailures >= this.options.profile['crash-limit']) {
      this.markBroken(`${this.startFailures} workers in a row failed to start; last: ${failure.message}`);
      return;
    }
    this.nextSpawnAt = Date.now() + respawnDelayMs(this.startFailures);
    if (this.poolSize() === 0) {
      for (const invocation of this.pending) invocation.fail(failure);
      this.pending.clear();
    }
    this.dispatch();
  }

  private onWorkerExit(worker: Worker, exit: WorkerExit): void {
    this.workers.delete(worker);
    const { logs } = this.options;
    if (exit.expected) {
      logs.add(worker.id, 'engine', `worker ${worker.id} stopped`);
    } else {
      this.counters.crashes++;
      this.crashStreak++;
      logs.add(worker.id, 'engine', exit.reason);
      this.recordCrash(worker.id, exit.reason, exit.output);
      this.nextSpawnAt = Date.now() + respawnDelayMs(this.crashStreak);
    }
    this.dispatch();
  }

  private recordCrash(workerId: string, reason: string, lines: string[]): void {
    const entry: CrashlogEntry = { id: `${Date.now()}-${workerId.slice(0, 8)}`, app: this.name, workerId, timestamp: Date.now(), reason, lines };
    this.options.saveCrashlog(entry).catch((error: unknown) => {
      this.options.logs.add(workerId, 'engine', `could not save crashlog: ${(error as Error).message}`);
    });
  }

  private markBroken(reason: string): void {
    this.state = 'broken';
    this.brokenReason = reason;
    this.options.logs.add('', 'engine', `app "${this.name}" is broken: ${reason}`);
    const error = new UnavailableError('app_broken', `app "${this.name}" is broken: ${reason}`);
    for (const invocation of this.pending) invocation.fail(error);
    this.pending.clear();
  }

  private shrinkIdle(idleMs: number): void {
    const now = Date.now();
    for (const worker of this.workers) {
      if (worker.isActive && worker.load === 0 && now - worker.idleSince >= idleMs) {
        this.options.logs.add(worker.id, 'engine', `worker ${worker.id} idle for ${idleMs / 1000}s: terminating`);
        void worker.terminate('idle-timeout');
      }
    }
  }

  info(queuedEvents = 0): AppRuntimeInfo {
    let busy = 0;
    let idle = 0;
    let sessions = 0;
    for (const worker of this.workers) {
      if (worker.isDead) continue;
      sessions += worker.load;
      if (worker.load > 0) busy++;
      else if (worker.isActive) idle++;
    }
    return {
      name: this.name,
      state: this.publicState(),
      profile: this.options.profileName,
      poolSize: this.poolSize(true),
      busy,
      idle,
      pending: this.pending.size,
      sessions,
      queuedEvents,
      counters: { ...this.counters },
      error: this.state === 'broken' ? this.brokenReason : undefined,
    };
  }

  publicState(): AppState {
    if (this.state === 'broken') return 'broken';
    return this.state === 'running' ? 'running' : 'stopped';
  }

  get brokenError(): string | undefined {
    return this.state === 'broken' ? this.brokenReason : undefined;
  }

  /**
   * Stops taking calls; lets calls in flight finish for up to `drainMs` (queued ones still get
   * workers), fails what is left, then terminates every worker and waits until all are reaped.
   */
  async stop(reason: string, drainMs: number): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopping';
    if (this.inFlight.size > 0 && drainMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setLongTimeout(resolve, drainMs);
        this.drainWaiters.push(() => {
          timer.clear();
          resolve();
        });
      });
    }
    this.state = 'stopped';
    clearInterval(this.deadlineSweep);
    if (this.idleTimer) clearInterval(this.idleTimer);
    if (this.respawnTimer) clearTimeout(this.respawnTimer);
    const error = new UnavailableError('app_stopped', `app "${this.name}" stopped: ${reason}`);
    for (const invocation of [...this.inFlight]) invocation.fail(error);
    this.pending.clear();
    while (this.starting > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    await Promise.all([...this.workers].map((worker) => worker.terminate(reason)));
  }
}
