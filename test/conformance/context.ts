/**
 * What the kit's checks share: the options, the plugin (loaded the way the engine loads it), the
 * app's manifest, the handshake the runtime sent, workers started directly (no engine), and a
 * real engine started on first use.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { workerBaseEnv } from '../../engine/isolate/clean-env.js';
import type { HandshakePayload } from '../../engine/protocol/frames.js';
import type { Plugin } from '../../plugins/types.js';
import { EXAMPLES, ROOT, cliJson, startEngine, tempDir, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';
import { KitPeer } from './peer.js';

export interface ConformanceOptions {
  /** Plugin name as manifests name it. */
  plugin: string;
  /** Directory of the conformance app (with its manifest.yaml). */
  appDir: string;
  /** Third-party plugin directory (`--plugins-dir`), if the plugin is not built in. */
  pluginsDir?: string;
  /** Isolate type for the app's profile in the engine checks (default process). */
  isolate?: { type: string; args?: Record<string, unknown> };
  /** Extra engine arguments (e.g. the docker socket). */
  engineArgs?: string[];
  /**
   * What the runtime must declare in its handshake: parallel (concurrency 0) or serial (1).
   * Optional: without it the kit reads the declared concurrency and checks the runtime keeps it.
   */
  sessions?: 'parallel' | 'serial';
  /** Prepares the app dir (e.g. compiles a shared object). */
  prepare?: () => Promise<void> | void;
  /** Timeout multiplier for slow isolates (containers). */
  slow?: number;
  /** Run every group even after one failed (default: stop at the first failing group). */
  keepGoing?: boolean;
}

export interface EngineSession {
  engine: RunningEngine;
  rpc: Rpc;
  app: string;
  target(event: string): string;
}

export interface LaunchOverrides {
  entrypoint?: string;
  heartbeatMs?: number;
  disownMs?: number;
  /** COCAINE_PROTOCOL: the highest protocol version the kit says it speaks (default 1). */
  protocol?: number;
}

/** The helper app the services checks call and emit to (see KitContext.helperApp). */
export const HELPER_APP = 'conformance-helper';

/** The heartbeat period the direct workers get: the engine's heartbeat-timeout is 4 periods. */
export const DIRECT_HEARTBEAT_MS = 250;

export class KitContext {
  readonly slow: number;
  readonly app: string;
  readonly appDir: string;
  /** The handshake the runtime sent (set by the handshake check). */
  handshake?: HandshakePayload;
  /** The protocol version the runtime handshakes with when offered 2 (set by the services group's first check). */
  servicesProtocol?: number;
  private readonly manifest: { entrypoint: string; environment: Record<string, string> };
  private plugin?: Plugin;
  private shared?: KitPeer;
  private readonly peers = new Set<KitPeer>();
  private session?: Promise<EngineSession>;
  private helper?: Promise<string>;
  private prepared?: Promise<void>;

  constructor(readonly options: ConformanceOptions) {
    this.slow = options.slow ?? 1;
    this.app = `conformance-${options.plugin}`;
    this.appDir = resolve(options.appDir);
    const manifest = parseYaml(readFileSync(join(this.appDir, 'manifest.yaml'), 'utf8')) as { entrypoint?: string; environment?: Record<string, string> };
    if (typeof manifest?.entrypoint !== 'string') throw new Error(`${join(this.appDir, 'manifest.yaml')}: "entrypoint" is missing`);
    this.manifest = { entrypoint: manifest.entrypoint, environment: manifest.environment ?? {} };
  }

  /** The startup-timeout the engine checks use, in ms. */
  get startupMs(): number {
    return 15_000 * this.slow;
  }

  /** Starts one worker of the runtime directly (the kit plays the engine), on this host. */
  async launch(overrides: LaunchOverrides = {}): Promise<KitPeer> {
    await this.prepare();
    const plugin = await this.loadPlugin();
    const entrypoint = overrides.entrypoint ?? this.manifest.entrypoint;
    const environment = this.manifest.environment;
    const peer = await KitPeer.start((endpoint, workerId) => {
      const launch = plugin.launch({ app: this.app, workerId, entrypoint, appDir: this.appDir, endpoint, pluginDir: plugin.runtimeDir, environment, placement: 'host' });
      return {
        command: launch.command,
        args: launch.args,
        cwd: this.appDir,
        env: {
          ...workerBaseEnv(),
          ...environment,
          ...launch.env,
          COCAINE_PROTOCOL: String(overrides.protocol ?? 1),
          COCAINE_APP: this.app,
          COCAINE_WORKER_ID: workerId,
          COCAINE_ENDPOINT: endpoint,
          COCAINE_ENTRYPOINT: entrypoint,
          COCAINE_HEARTBEAT_MS: String(overrides.heartbeatMs ?? DIRECT_HEARTBEAT_MS),
          COCAINE_DISOWN_MS: String(overrides.disownMs ?? 60_000),
        },
      };
    });
    this.peers.add(peer);
    return peer;
  }

  /** The worker the protocol checks share (started by the handshake check; restarted if it died). */
  async sharedWorker(): Promise<KitPeer> {
    if (!this.shared || !this.shared.usable) {
      if (this.shared) await this.release(this.shared);
      this.shared = await this.launch();
      await this.shared.firstFrameWithin(this.startupMs);
    }
    return this.shared;
  }

  /** Kills and forgets a worker started by launch(). */
  async release(peer: KitPeer): Promise<void> {
    this.peers.delete(peer);
    await peer.close();
  }

  /** A missing entrypoint of the same kind as the app's (same extension). */
  missingEntrypoint(): string {
    const entry = this.manifest.entrypoint;
    return join(dirname(entry), `missing-conformance-${basename(entry)}`);
  }

  /** Runs the options' prepare() once (before the first worker or upload). */
  prepare(): Promise<void> {
    this.prepared ??= Promise.resolve(this.options.prepare?.());
    return this.prepared;
  }

  /**
   * A real engine with the app uploaded under a kit profile; started once, on first use. The
   * direct checks' shared worker is stopped first: from here on the engine owns the app's workers.
   */
  engine(): Promise<EngineSession> {
    this.session ??= (async () => {
      if (this.shared) await this.release(this.shared);
      this.shared = undefined;
      await this.prepare();
      return this.startEngine();
    })();
    return this.session;
  }

  /**
   * A second app next to the conformance app, for the services checks: examples/node-echo
   * (`echo` answers its body) as `conformance-helper`, in the process isolate. Uploaded once.
   */
  helperApp(): Promise<string> {
    this.helper ??= (async () => {
      const { engine } = await this.engine();
      const profileFile = join(tempDir('profile'), 'conformance-helper.json');
      writeFileSync(profileFile, JSON.stringify({ 'pool-limit': 2, concurrency: 10, 'queue-limit': 100, isolate: { type: 'process', args: {} } }));
      await cliJson(engine, ['profile', 'upload', 'conformance-helper', profileFile]);
      await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-echo'), '--name', HELPER_APP, '--profile', 'conformance-helper']);
      return HELPER_APP;
    })();
    return this.helper;
  }

  async close(): Promise<void> {
    await Promise.all([...this.peers].map((peer) => peer.close()));
    this.peers.clear();
    const session = await this.session?.catch(() => undefined);
    session?.rpc.close();
    await session?.engine.stop();
  }

  private async loadPlugin(): Promise<Plugin> {
    if (this.plugin) return this.plugin;
    // The engine's own registry from dist/, so the plugin is found and checked exactly as the engine does.
    const url = pathToFileURL(join(ROOT, 'dist/engine/plugins/registry.js')).href;
    const { PluginRegistry } = (await import(url)) as typeof import('../../engine/plugins/registry.js');
    const registry = await PluginRegistry.load({ directories: this.options.pluginsDir ? [this.options.pluginsDir] : [] });
    if (!registry.has(this.options.plugin)) {
      const dir = this.options.pluginsDir;
      const hint =
        dir && ['index.js', 'index.mjs', 'package.json'].some((file) => existsSync(join(dir, file)))
          ? `; ${dir} looks like the plugin itself: --plugins-dir takes the directory that holds plugin folders (its parent)`
          : '';
      throw new Error(`plugin "${this.options.plugin}" did not load${registry.problems.length ? `: ${registry.problems.join('; ')}` : ` (loaded: ${registry.list().map((p) => p.name).join(', ')})`}${hint}`);
    }
    this.plugin = registry.get(this.options.plugin);
    return this.plugin;
  }

  private async startEngine(): Promise<EngineSession> {
    const { options, slow, app } = this;
    const engine = await startEngine({ args: [...(options.pluginsDir ? ['--plugins-dir', options.pluginsDir] : []), ...(options.engineArgs ?? [])] });
    const rpc = connectRpc(engine.address);
    try {
      const profileFile = join(tempDir('profile'), 'conformance.json');
      writeFileSync(
        profileFile,
        JSON.stringify({
          'pool-limit': 1,
          concurrency: 10,
          'queue-limit': 100,
          'heartbeat-timeout': 1.5 * slow,
          'startup-timeout': this.startupMs / 1000,
          'termination-timeout': 2,
          'crash-limit': 1000,
          isolate: options.isolate ?? { type: 'process', args: {} },
        }),
      );
      await cliJson(engine, ['profile', 'upload', 'conformance', profileFile]);
      await cliJson(engine, ['app', 'upload', this.appDir, '--name', app, '--profile', 'conformance']);
    } catch (error) {
      rpc.close();
      await engine.stop();
      throw error;
    }
    return { engine, rpc, app, target: (event) => `${app}@${event}` };
  }
}
