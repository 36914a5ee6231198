import type { Logger } from 'pino';
import type { AppView, LogLine, UploadAppInput } from '../api/facade.js';
import { DEFAULT_PROFILE, parseManifest, parseProfile } from '../../manifests/validate.js';
import type { Profile } from '../../manifests/types.js';
import { InvalidInputError, NotFoundError, UnavailableError } from '../errors/index.js';
import type { PluginRegistry } from '../plugins/registry.js';
import type { Router, StartedApp } from '../router/router.js';
import { inspectArchive } from '../storage/tarball.js';
import type { AppRecord, CrashlogSummary, Runlist, Storage } from '../storage/types.js';
import { validateName } from '../util/names.js';

export interface AppAdminDeps {
  storage: Storage;
  router: Router;
  plugins: PluginRegistry;
  drainMs(): number;
  onStarted(app: StartedApp): void;
  onStopped(name: string): Promise<void>;
  onRemoved(name: string): Promise<void>;
  logger: Logger;
}

const MANIFEST_NAMES = ['manifest.yaml', 'manifest.yml', 'manifest.json'];
/** A manifest inside an archive may be this large (the same bound as one sent beside it). */
const MAX_MANIFEST_BYTES = 1024 * 1024;
const DEFAULT = 'default';

/** Deploy and admin operations: apps, profiles, runlist, start/stop. */
export class AppAdmin {
  constructor(private readonly deps: AppAdminDeps) {}

  /** At engine start: publish every app of the runlist. A broken entry is logged, never fatal. */
  async loadRunlist(): Promise<void> {
    const { storage, router, logger } = this.deps;
    router.setKnown((await storage.listApps()).map((record) => record.name));
    const runlist = await storage.getRunlist();
    for (const [app, profile] of Object.entries(runlist)) {
      try {
        await this.publish(app, profile);
      } catch (error) {
        logger.error({ app, profile, err: (error as Error).message }, 'app from the runlist not started');
      }
    }
  }

  /** Changes made by other nodes (shared storage): new versions restart, runlist entries start. */
  async followStorage(): Promise<void> {
    const { storage, router, logger } = this.deps;
    try {
      for await (const change of storage.watch()) {
        if (change.kind === 'app') {
          if (change.removed) {
            if (router.isStarted(change.name)) await this.unpublish(change.name, 'removed');
            router.forget(change.name);
            continue;
          }
          router.addKnown(change.name);
          const started = router.startedApp(change.name);
          const record = await storage.getApp(change.name);
          if (started && record && record.sha256 !== started.record.sha256) {
            await this.unpublish(change.name, 'new version uploaded');
            await this.publish(change.name, started.profileName);
          }
        } else if (change.kind === 'runlist') {
          const runlist = await storage.getRunlist();
          for (const [app, profile] of Object.entries(runlist)) {
            if (!router.isStarted(app)) await this.publish(app, profile).catch(() => undefined);
          }
        }
      }
    } catch (error) {
      logger.error({ err: (error as Error).message }, 'storage watch ended');
    }
  }

  assertCallable(app: string): void {
    const engine = this.deps.router.engineFor(app);
    if (engine instanceof Error) throw engine;
  }

  private async loadProfile(name: string): Promise<Profile> {
    const profile = await this.deps.storage.getProfile(name);
    if (profile) return profile;
    if (name === DEFAULT) return DEFAULT_PROFILE;
    throw new NotFoundError('not_found', `no profile named "${name}" (upload it with: cocaine-deploy profile upload ${name} FILE)`);
  }

  private async publish(name: string, profileName: string): Promise<StartedApp> {
    const record = await this.deps.storage.getApp(name);
    if (!record) throw new NotFoundError('app_not_found', `no app named "${name}"`);
    const profile = await this.loadProfile(profileName);
    this.deps.plugins.get(record.manifest.plugin);
    const started: StartedApp = { record, profile, profileName };
    this.deps.router.start(started);
    this.deps.onStarted(started);
    return started;
  }

  private async unpublish(name: string, reason: string): Promise<void> {
    await this.deps.onStopped(name);
    await this.deps.router.stop(name, reason, this.deps.drainMs());
  }

  async uploadApp(input: UploadAppInput): Promise<AppView> {
    const { storage } = this.deps;
    const { path, sha256, size } = input.archive;
    // One streamed pass over the spooled file: checks every entry and keeps the manifest candidates.
    const summary = await inspectArchive(path, undefined, { capture: MANIFEST_NAMES, captureMaxBytes: MAX_MANIFEST_BYTES });
    let manifestText = input.manifest && input.manifest.length > 0 ? input.manifest : undefined;
    let manifestFile = input.manifestFile || 'manifest';
    if (!manifestText) {
      for (const candidate of MANIFEST_NAMES) {
        const found = summary.captured.get(candidate);
        if (found) {
          manifestText = found;
          manifestFile = `${candidate} (in the archive)`;
          break;
        }
      }
    }
    if (!manifestText) {
      throw new InvalidInputError('invalid_manifest', `no manifest given and none in the archive (looked for ${MANIFEST_NAMES.join(', ')})`);
    }
    const manifest = parseManifest(manifestText, manifestFile);
    const name = validateName('app', input.name || manifest.name);
    manifest.name = name;
    this.deps.plugins.get(manifest.plugin);
    const profileName = validateName('profile', input.profile || (await storage.getRunlist())[name] || DEFAULT);
    await this.loadProfile(profileName);
    if (!summary.paths.includes(manifest.entrypoint.replace(/^\.\//, ''))) {
      throw new InvalidInputError('invalid_manifest', `${manifestFile}: field "entrypoint": "${manifest.entrypoint}" is not a file in the archive`, { field: 'entrypoint' });
    }
    const record: AppRecord = { name, manifest, sha256, size, uploadedAt: Date.now() };
    await storage.putApp(record, path);
    if (this.deps.router.isStarted(name)) await this.unpublish(name, 'new version uploaded');
    await storage.addToRunlist(name, profileName);
    await this.publish(name, profileName);
    return this.viewApp(name);
  }

  async listApps(): Promise<AppView[]> {
    const records = await this.deps.storage.listApps();
    const runlist = await this.deps.storage.getRunlist();
    return records.map((record) => this.view(record, runlist));
  }

  async viewApp(name: string): Promise<AppView> {
    const record = await this.deps.storage.getApp(validateName('app', name));
    if (!record) throw new NotFoundError('app_not_found', `no app named "${name}"`);
    return this.view(record, await this.deps.storage.getRunlist());
  }

  private view(record: AppRecord, runlist: Runlist): AppView {
    const { router } = this.deps;
    const started = router.startedApp(record.name);
    const engine = router.engine(record.name);
    const broken = engine?.brokenError;
    return {
      record,
      state: broken ? 'broken' : started ? 'running' : 'stopped',
      profile: started?.profileName ?? runlist[record.name] ?? DEFAULT,
      inRunlist: Object.hasOwn(runlist, record.name),
      error: broken,
    };
  }

  async removeApp(name: string): Promise<void> {
    validateName('app', name);
    const { storage, router } = this.deps;
    if (router.isStarted(name)) await this.unpublish(name, 'removed');
    await storage.removeFromRunlist(name);
    const removed = await storage.removeApp(name);
    router.forget(name);
    await this.deps.onRemoved(name);
    if (!removed) throw new NotFoundError('app_not_found', `no app named "${name}"`);
  }

  async startApp(name: string, profile?: string): Promise<AppView> {
    validateName('app', name);
    const { storage, router } = this.deps;
    const profileName = profile || (await storage.getRunlist())[name] || router.startedApp(name)?.profileName || DEFAULT;
    if (router.isStarted(name)) {
      const current = router.startedApp(name);
      const engine = router.engine(name);
      if (current?.profileName === profileName && !engine?.brokenError) return this.viewApp(name);
      await this.unpublish(name, 'restarted');
    }
    await this.publish(name, profileName);
    await storage.addToRunlist(name, profileName);
    return this.viewApp(name);
  }

  async stopApp(name: string): Promise<AppView> {
    validateName('app', name);
    const view = await this.viewApp(name);
    if (this.deps.router.isStarted(name)) await this.unpublish(name, 'stopped by request');
    await this.deps.storage.removeFromRunlist(name);
    return { ...view, state: 'stopped', inRunlist: false, error: undefined };
  }

  async restartApp(name: string, profile?: string): Promise<AppView> {
    validateName('app', name);
    if (this.deps.router.isStarted(name)) await this.unpublish(name, 'restarted');
    return this.startApp(name, profile);
  }

  async *appLogs(name: string, options: { lines: number; follow: boolean; signal: AbortSignal }): AsyncIterable<LogLine> {
    await this.requireApp(name);
    yield* this.deps.router.logsFor(name).read(options);
  }

  /** The stored app, or app_not_found: for operations that would otherwise succeed on a typo. */
  async requireApp(name: string): Promise<AppRecord> {
    const record = await this.deps.storage.getApp(validateName('app', name));
    if (!record) throw new NotFoundError('app_not_found', `no app named "${name}"`);
    return record;
  }

  /** Crashlogs outlive nothing but their app; none and no such app is a typo, not an empty list. */
  async listCrashlogs(app: string): Promise<CrashlogSummary[]> {
    validateName('app', app);
    const entries = await this.deps.storage.listCrashlogs(app);
    if (entries.length === 0) await this.requireApp(app);
    return entries;
  }

  async removeCrashlogs(app: string): Promise<void> {
    validateName('app', app);
    if ((await this.deps.storage.listCrashlogs(app)).length === 0) await this.requireApp(app);
    await this.deps.storage.removeCrashlogs(app);
  }

  /** Removing an app that is neither in the runlist nor stored is refused (a stale entry can still go). */
  async removeFromRunlist(app: string): Promise<Runlist> {
    validateName('app', app);
    if (!Object.hasOwn(await this.deps.storage.getRunlist(), app)) await this.requireApp(app);
    return this.deps.storage.removeFromRunlist(app);
  }

  /** Stored profiles plus the implicit "default" (usable without an upload). */
  async listProfiles(): Promise<string[]> {
    const names = await this.deps.storage.listProfiles();
    return names.includes(DEFAULT) ? names : [DEFAULT, ...names].sort();
  }

  async uploadProfile(name: string, content: Buffer, file?: string): Promise<{ name: string; profile: Profile }> {
    validateName('profile', name);
    const profile = parseProfile(content, file || `profile ${name}`);
    await this.deps.storage.putProfile(name, profile);
    return { name, profile };
  }

  async viewProfile(name: string): Promise<{ name: string; profile: Profile }> {
    return { name, profile: await this.loadProfile(validateName('profile', name)) };
  }

  async removeProfile(name: string): Promise<void> {
    validateName('profile', name);
    const runlist = await this.deps.storage.getRunlist();
    const users = Object.entries(runlist).filter(([, profile]) => profile === name).map(([app]) => app);
    if (users.length > 0) {
      throw new InvalidInputError('invalid_argument', `profile "${name}" is used by ${users.join(', ')} in the runlist; change their profile first`);
    }
    if (!(await this.deps.storage.removeProfile(name))) throw new NotFoundError('not_found', `no profile named "${name}"`);
  }

  async addToRunlist(app: string, profile: string): Promise<Runlist> {
    validateName('app', app);
    if (!(await this.deps.storage.getApp(app))) throw new NotFoundError('app_not_found', `no app named "${app}"`);
    await this.loadProfile(validateName('profile', profile));
    return this.deps.storage.addToRunlist(app, profile);
  }
}

export { UnavailableError };
