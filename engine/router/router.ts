import type { Invocation, InvocationRequest } from '../api/facade.js';
import type { Profile } from '../../manifests/types.js';
import { NotFoundError, UnavailableError, type EngineError } from '../errors/index.js';
import { AppEngine, type AppEngineOptions } from '../pool/app-engine.js';
import { AppLogs } from '../pool/app-logs.js';
import { PooledInvocation } from '../pool/invocation.js';
import type { AppRecord } from '../storage/types.js';

/** An app that is started: published and ready. Its engine exists only after its first call. */
export interface StartedApp {
  record: AppRecord;
  profile: Profile;
  profileName: string;
}

export type AppEngineFactory = (app: StartedApp, logs: AppLogs) => AppEngine;

/**
 * Resolves `app@event` to the app's engine, creating it lazily on the first call. Knows which
 * apps exist (to tell "unknown" from "stopped") without touching storage on the hot path.
 */
export class Router {
  private readonly started = new Map<string, StartedApp>();
  private readonly engines = new Map<string, AppEngine>();
  private readonly logs = new Map<string, AppLogs>();
  private readonly known = new Set<string>();
  private accepting = true;

  constructor(private readonly createEngine: AppEngineFactory) {}

  invoke(request: InvocationRequest): Invocation {
    const engine = this.engineFor(request.app);
    if (typeof engine !== 'object' || !(engine instanceof AppEngine)) return failed(request, engine);
    return engine.invoke(request);
  }

  /** The app's engine (created now if needed), or the error that refuses the call. */
  engineFor(app: string): AppEngine | EngineError {
    const existing = this.engines.get(app);
    if (existing && !existing.isStopped) return existing;
    if (!this.accepting) return new UnavailableError('app_stopped', 'the engine is shutting down');
    const started = this.started.get(app);
    if (!started) {
      if (this.known.has(app)) {
        return new UnavailableError('app_stopped', `app "${app}" is stopped; start it with: cocaine-deploy app start ${app}`);
      }
      return new NotFoundError('app_not_found', `no app named "${app}" (deploy it with: cocaine-deploy app upload DIR)`);
    }
    const engine = this.createEngine(started, this.logsFor(app));
    this.engines.set(app, engine);
    return engine;
  }

  logsFor(app: string): AppLogs {
    let logs = this.logs.get(app);
    if (!logs) {
      logs = new AppLogs();
      this.logs.set(app, logs);
    }
    return logs;
  }

  setKnown(apps: Iterable<string>): void {
    this.known.clear();
    for (const app of apps) this.known.add(app);
  }

  addKnown(app: string): void {
    this.known.add(app);
  }

  /** Publishes the app: calls are accepted from now on. */
  start(app: StartedApp): void {
    this.known.add(app.record.name);
    this.started.set(app.record.name, app);
  }

  isStarted(app: string): boolean {
    return this.started.has(app);
  }

  startedApp(app: string): StartedApp | undefined {
    return this.started.get(app);
  }

  startedApps(): StartedApp[] {
    return [...this.started.values()];
  }

  engine(app: string): AppEngine | undefined {
    return this.engines.get(app);
  }

  /** Unpublishes the app and stops its engine (drains calls in flight for up to drainMs). */
  async stop(app: string, reason: string, drainMs: number): Promise<void> {
    this.started.delete(app);
    const engine = this.engines.get(app);
    this.engines.delete(app);
    if (engine) await engine.stop(reason, drainMs);
  }

  forget(app: string): void {
    this.known.delete(app);
    this.logs.get(app)?.closeFollowers();
    this.logs.delete(app);
  }

  /** Graceful shutdown of every app engine. */
  async shutdown(drainMs: number): Promise<void> {
    this.accepting = false;
    const engines = [...this.engines.values()];
    this.engines.clear();
    await Promise.all(engines.map((engine) => engine.stop('engine shutting down', drainMs)));
    for (const logs of this.logs.values()) logs.closeFollowers();
  }
}

function failed(request: InvocationRequest, error: EngineError): Invocation {
  const invocation = new PooledInvocation(request, 0, () => undefined);
  invocation.fail(error);
  return invocation;
}

export type { AppEngineOptions };
