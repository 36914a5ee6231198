import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type {
  AppView,
  EngineFacade,
  Invocation,
  InvocationRequest,
  LogLine,
  NodeInfo,
  UploadAppInput,
} from './api/facade.js';
import type { EngineOptions } from './config/options.js';
import { NotFoundError } from './errors/index.js';
import { IsolateRegistry } from './isolate/registry.js';
import { resolveLimits } from './isolate/limits.js';
import { PluginRegistry } from './plugins/registry.js';
import { AppEngine } from './pool/app-engine.js';
import type { AppLogs } from './pool/app-logs.js';
import { EventRunner } from './queue/event-runner.js';
import type { EventStatus, Queue } from './queue/types.js';
import { Router, type StartedApp } from './router/router.js';
import { ensureSpooled, removeSpool } from './storage/spool.js';
import type { CrashlogEntry, CrashlogSummary, Runlist, Storage } from './storage/types.js';
import { AppAdmin } from './admin/app-admin.js';
import { openAppStore, openBackends, openTraceStore } from './backends.js';
import type { AppStore } from './app-store/types.js';
import { ServiceDispatcher } from './services/dispatcher.js';
import { engineTraces, type EngineTraces } from './trace/engine-traces.js';
import { tracedQueuedInvoke } from './trace/queued.js';
import type { TraceStore } from './trace/types.js';
import { packageVersion } from './util/paths.js';

export interface EngineDeps {
  options: EngineOptions;
  logger: Logger;
}

/** The engine core: composes storage, queue, plugins, isolates and the router behind EngineFacade. */
export class Engine implements EngineFacade {
  readonly nodeId: string;
  readonly startedAt = Date.now();
  private readonly router: Router;
  private readonly admin: AppAdmin;
  private readonly events: EventRunner;
  private readonly spoolRoot: string;
  private readonly socketDir: string;
  private clusterNodes: (() => Promise<NodeInfo[]>) | undefined;
  private stopping = false;
  private readonly services: ServiceDispatcher;
  /** Opened on the first storage request of a handler. */
  private appStorePromise: Promise<AppStore> | undefined;
  listenAddress = '';

  private constructor(
    private readonly options: EngineOptions,
    private readonly logger: Logger,
    readonly storage: Storage,
    readonly queue: Queue,
    readonly plugins: PluginRegistry,
    private readonly isolates: IsolateRegistry,
    nodeId: string,
    private readonly runDirs: RunDirs,
    readonly traces?: EngineTraces,
  ) {
    this.nodeId = nodeId;
    this.spoolRoot = join(resolve(options.dataDir), 'spool');
    this.socketDir = runDirs.socketDir;
    this.router = new Router((app, logs) => this.createAppEngine(app, logs));
    this.events = new EventRunner(queue, tracedQueuedInvoke(traces?.tracer, (request) => this.router.invoke(request)));
    this.services = new ServiceDispatcher(
      {
        invoke: (request) => this.router.invoke(request),
        enqueue: (input) => this.enqueue(input),
        appStore: () =>
          (this.appStorePromise ??= openAppStore(options, resolve(options.dataDir)).catch((error: unknown) => {
            this.appStorePromise = undefined; // the next request tries again
            throw error;
          })),
        logsFor: (app) => this.router.logsFor(app),
        maxCallDepth: options.maxCallDepth,
        tracer: traces?.tracer,
      },
      options.maxMessageBytes,
    );
    this.admin = new AppAdmin({
      storage,
      router: this.router,
      plugins,
      drainMs: () => options.drainTimeoutMs,
      onStarted: (app) => this.events.subscribe(app.record.name, app.profile['pool-limit'] * app.profile.concurrency),
      onStopped: (name) => this.events.unsubscribe(name),
      onRemoved: (name) => removeSpool(this.spoolRoot, name),
      logger,
    });
  }

  static async create(options: EngineOptions, logger: Logger): Promise<Engine> {
    const dataDir = resolve(options.dataDir);
    mkdirSync(dataDir, { recursive: true });
    const nodeId = options.nodeId || stableNodeId(dataDir);
    const runDirs = createRunDirs(options.runDir || join(tmpdir(), `cocaine-${createHash('sha1').update(dataDir).digest('hex').slice(0, 10)}`), !options.runDir);
    let backends: Awaited<ReturnType<typeof openBackends>>;
    let plugins: PluginRegistry;
    try {
      backends = await openBackends(options, dataDir);
    } catch (error) {
      await runDirs.remove();
      throw error;
    }
    try {
      plugins = await PluginRegistry.load({ directories: options.pluginDirs, packages: options.pluginPackages });
    } catch (error) {
      await Promise.allSettled([backends.queue.close(), backends.storage.close()]);
      await runDirs.remove();
      throw error;
    }
    for (const problem of plugins.problems) logger.warn({ problem }, 'plugin not loaded');
    const isolates = new IsolateRegistry({
      engineId: nodeId,
      stateDir: join(dataDir, 'run'),
      dockerSocket: options.dockerSocket,
      dockerImage: options.dockerImage,
    });
    let traceStore: TraceStore;
    try {
      traceStore = await openTraceStore(options, (message) => logger.warn(message));
    } catch (error) {
      await Promise.allSettled([backends.queue.close(), backends.storage.close()]);
      await runDirs.remove();
      throw error;
    }
    const traces = engineTraces(traceStore, nodeId, logger);
    const engine = new Engine(options, logger, backends.storage, backends.queue, plugins, isolates, nodeId, runDirs, traces);
    try {
      await engine.boot();
    } catch (error) {
      await engine.shutdown().catch(() => undefined);
      throw error;
    }
    return engine;
  }

  /** Cleans orphans of a crashed predecessor, then starts (publishes, never spawns) the runlist. */
  private async boot(): Promise<void> {
    const types = ['process', ...(existsSync('/sys/fs/cgroup') ? ['cgroup'] : []), ...(existsSync(this.options.dockerSocket) ? ['docker'] : [])];
    for (const problem of await this.isolates.cleanupOrphans(types)) this.logger.debug({ problem }, 'orphan cleanup skipped');
    await this.admin.loadRunlist();
    void this.admin.followStorage();
  }

  setClusterView(nodes: () => Promise<NodeInfo[]>): void {
    this.clusterNodes = nodes;
  }

  private createAppEngine(app: StartedApp, logs: AppLogs): AppEngine {
    const { record, profile, profileName } = app;
    const isolateType = profile.isolate.type;
    let isolatePromise: ReturnType<IsolateRegistry['get']> | undefined;
    return new AppEngine({
      app: record.name,
      manifest: record.manifest,
      profile,
      profileName,
      plugin: this.plugins.get(record.manifest.plugin),
      isolate: lazyIsolate(isolateType, () => (isolatePromise ??= this.isolates.get(isolateType))),
      limits: resolveLimits(profile.isolate.args),
      socketDir: this.socketDir,
      logs,
      prepareAppDir: async () => {
        await (isolatePromise ??= this.isolates.get(isolateType));
        return ensureSpooled(this.storage, record, this.spoolRoot);
      },
      // crashlog-limit 0: no crashlogs are kept.
      saveCrashlog: async (entry: CrashlogEntry) => (profile['crashlog-limit'] > 0 ? this.storage.addCrashlog(entry, profile['crashlog-limit']) : undefined),
      services: this.services,
    });
  }

  // ------------------------------------------------------------------ calls

  invoke(request: InvocationRequest): Invocation {
    return this.router.invoke(request);
  }

  async enqueue(input: Parameters<EngineFacade['enqueue']>[0]) {
    this.admin.assertCallable(input.app);
    return this.queue.enqueue({
      id: input.id || undefined,
      app: input.app,
      event: input.event,
      data: input.data,
      headers: input.headers,
      maxAttempts: input.maxAttempts || this.options.maxAttempts,
      notBefore: input.delayMs ? Date.now() + input.delayMs : 0,
    });
  }

  async status(id: string): Promise<EventStatus> {
    const status = await this.queue.status(id);
    if (!status) throw new NotFoundError('event_id_not_found', `no event with id "${id}"`);
    return status;
  }

  async deadLetters(app?: string): Promise<EventStatus[]> {
    const events = await this.queue.deadLetters(app || undefined);
    if (app && events.length === 0) await this.admin.requireApp(app);
    return events;
  }

  redrive(id: string): Promise<EventStatus> {
    return this.queue.redrive(id);
  }

  // ------------------------------------------------------------------ deploy / admin

  uploadApp(input: UploadAppInput): Promise<AppView> {
    return this.admin.uploadApp(input);
  }
  listApps(): Promise<AppView[]> {
    return this.admin.listApps();
  }
  viewApp(name: string): Promise<AppView> {
    return this.admin.viewApp(name);
  }
  removeApp(name: string): Promise<void> {
    return this.admin.removeApp(name);
  }
  startApp(name: string, profile?: string): Promise<AppView> {
    return this.admin.startApp(name, profile);
  }
  stopApp(name: string): Promise<AppView> {
    return this.admin.stopApp(name);
  }
  restartApp(name: string, profile?: string): Promise<AppView> {
    return this.admin.restartApp(name, profile);
  }
  appLogs(name: string, options: { lines: number; follow: boolean; signal: AbortSignal }): AsyncIterable<LogLine> {
    return this.admin.appLogs(name, options);
  }
  uploadProfile(name: string, content: Buffer, file?: string) {
    return this.admin.uploadProfile(name, content, file);
  }
  listProfiles(): Promise<string[]> {
    return this.admin.listProfiles();
  }
  viewProfile(name: string) {
    return this.admin.viewProfile(name);
  }
  removeProfile(name: string): Promise<void> {
    return this.admin.removeProfile(name);
  }
  viewRunlist(): Promise<Runlist> {
    return this.storage.getRunlist();
  }
  addToRunlist(app: string, profile: string): Promise<Runlist> {
    return this.admin.addToRunlist(app, profile);
  }
  removeFromRunlist(app: string): Promise<Runlist> {
    return this.admin.removeFromRunlist(app);
  }
  listCrashlogs(app: string): Promise<CrashlogSummary[]> {
    return this.admin.listCrashlogs(app);
  }
  async viewCrashlog(app: string, id: string): Promise<CrashlogEntry> {
    const entry = await this.storage.getCrashlog(app, id);
    if (!entry) throw new NotFoundError('not_found', `no crashlog "${id}" for app "${app}"`);
    return entry;
  }
  async removeCrashlogs(app: string): Promise<void> {
    await this.admin.removeCrashlogs(app);
  }

  async info(options: { cluster: boolean }): Promise<{ node: NodeInfo; cluster: NodeInfo[] }> {
    const node = await this.nodeInfo();
    const cluster = options.cluster && this.clusterNodes ? await this.clusterNodes() : [node];
    return { node, cluster };
  }

  async nodeInfo(): Promise<NodeInfo> {
    const apps = await Promise.all(
      this.router.startedApps().map(async (app) => {
        const name = app.record.name;
        const queued = await this.queue.depth(name).catch(() => 0);
        const engine = this.router.engine(name);
        if (engine) return engine.info(queued);
        return {
          name,
          state: 'running' as const,
          profile: app.profileName,
          poolSize: 0,
          busy: 0,
          idle: 0,
          pending: 0,
          sessions: 0,
          queuedEvents: queued,
          counters: { accepted: 0, completed: 0, failed: 0, rejected: 0, timeouts: 0, crashes: 0, spawned: 0 },
        };
      }),
    );
    return {
      nodeId: this.nodeId,
      version: packageVersion(),
      uptimeMs: Date.now() - this.startedAt,
      listen: this.listenAddress,
      storage: `${this.storage.kind} ${this.storage.location}`,
      queue: this.queue.kind,
      isolate: 'process (default; profiles choose cgroup or docker)',
      apps,
      plugins: this.plugins.list(),
      seenAt: Date.now(),
    };
  }

  /** Stops taking work, drains calls in flight, terminates and reaps every worker, closes backends. */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    try {
      await this.events.close();
      await this.router.shutdown(this.options.drainTimeoutMs);
      await this.isolates.close();
      await this.queue.close();
      const appStore = this.appStorePromise;
      this.appStorePromise = undefined;
      if (appStore) await appStore.then((store) => store.close(), () => undefined);
      await this.storage.close();
      await this.traces?.close();
    } finally {
      await this.runDirs.remove();
    }
  }
}

/** An Isolate whose creation (e.g. connecting to Docker) happens on the first spawn. */
function lazyIsolate(type: string, get: () => ReturnType<IsolateRegistry['get']>): import('./isolate/types.js').Isolate {
  let resolved: import('./isolate/types.js').Isolate | undefined;
  void get().then((isolate) => (resolved = isolate), () => undefined);
  return {
    type,
    workerPaths(spec) {
      if (!resolved) throw new Error(`isolate "${type}" is not ready`);
      return resolved.workerPaths(spec);
    },
    async spawn(spec) {
      return (await get()).spawn(spec);
    },
    async cleanupOrphans(engineId) {
      return (await get()).cleanupOrphans(engineId);
    },
    async close() {
      return (await get()).close();
    },
  };
}

function stableNodeId(dataDir: string): string {
  const file = join(dataDir, 'node-id');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const id = randomUUID();
  writeFileSync(file, `${id}\n`);
  return id;
}

interface RunDirs {
  socketDir: string;
  /** Removes what the engine owns: its socket directory, and the run directory when the engine made it. */
  remove(): Promise<void>;
}

/**
 * The run directory and its socket directory `s` (the engine's own, even when a killed predecessor
 * left it). A run directory that existed before is kept, unless it is the engine's default one
 * (`/tmp/cocaine-<hash>`) and nothing else is in it.
 */
function createRunDirs(runDir: string, isDefault: boolean): RunDirs {
  const socketDir = join(runDir, 's');
  // The first directory mkdirSync created: the run directory (or a parent) when it was new.
  const first = mkdirSync(socketDir, { recursive: true });
  const createdAbove = first !== undefined && resolve(first) !== resolve(socketDir) ? first : undefined;
  return {
    socketDir,
    async remove() {
      await rm(socketDir, { recursive: true, force: true });
      if (createdAbove) await rm(createdAbove, { recursive: true, force: true });
      else if (isDefault) await rmdir(runDir).catch(() => undefined);
    },
  };
}
