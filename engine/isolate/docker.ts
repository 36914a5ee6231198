import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { join, posix } from 'node:path';
import { Writable } from 'node:stream';
import Dockerode from 'dockerode';
import { InvalidInputError, UnavailableError } from '../errors/index.js';
import {
  CONTAINER_APP_DIR,
  CONTAINER_PACKAGE_DIR,
  CONTAINER_PLUGIN_DIR,
  CONTAINER_SOCKET_DIR,
  containerEndpoint,
  defaultPackageRoot,
  pluginMount,
} from './docker-paths.js';
import { formatBytes, weightToShares } from './limits.js';
import { OutputFanout } from './output-lines.js';
import type { ExitInfo, Isolate, OutputStream, ResourceLimits, SpawnSpec, WorkerPaths, WorkerProcess } from './types.js';

export interface DockerIsolateOptions {
  /** The Docker engine's unix socket. */
  socketPath: string;
  engineId: string;
  /** Kept for symmetry with the other isolates; containers are found by label, not by records. */
  runDir: string;
  /** Image when the profile's `isolate.args.image` is absent. */
  defaultImage?: string;
  /** Root of the installed cocaine-engine package (plugin runtimes under it keep their layout). */
  packageRoot?: string;
  /** Size of `/tmp` (the only writable place besides the socket). */
  tmpfsSize?: string;
}

export const LABEL_ENGINE = 'cocaine.engine';
export const LABEL_APP = 'cocaine.app';
export const LABEL_WORKER = 'cocaine.worker';

/**
 * Bytes kept for the first listener when output comes before anyone listens: a container may write
 * a lot while its start is being confirmed.
 */
const EARLY_BYTES = 1024 * 1024;
/** How long output may still arrive after the container stopped. */
const OUTPUT_GRACE_MS = 1000;

/**
 * Workers as Docker containers: read-only root, no network, the app and the plugin runtime
 * mounted read-only, the worker's socket the only way out, limits from the profile. Every
 * container carries `cocaine.engine/app/worker` labels so a restarted engine finds its orphans.
 */
export class DockerIsolate implements Isolate {
  readonly type = 'docker';
  readonly docker: Dockerode;
  private readonly packageRoot: string;
  private readonly live = new Map<string, DockerWorker>();
  private readonly commandsFound = new Set<string>();

  constructor(private readonly options: DockerIsolateOptions) {
    if (!options.socketPath) throw new UnavailableError('spawn_failed', 'DockerIsolate options.socketPath must be the Docker engine socket path');
    if (!options.engineId) throw new UnavailableError('spawn_failed', 'DockerIsolate options.engineId must be a non-empty id');
    this.docker = new Dockerode({ socketPath: options.socketPath });
    this.packageRoot = options.packageRoot ?? defaultPackageRoot();
  }

  workerPaths(spec: { appDir: string; socketDir: string; pluginDir: string; workerId: string }): WorkerPaths {
    return { appDir: CONTAINER_APP_DIR, endpoint: containerEndpoint(spec.workerId), pluginDir: pluginMount(spec.pluginDir, this.packageRoot).containerDir };
  }

  async spawn(spec: SpawnSpec): Promise<WorkerProcess> {
    const what = `worker ${spec.workerId} of app "${spec.app}"`;
    const args = spec.isolateArgs;
    const image = args.image ?? this.options.defaultImage;
    if (typeof image !== 'string' || image === '') {
      throw new InvalidInputError('invalid_profile', `field "isolate.args.image" must name a Docker image for the docker isolate (got ${JSON.stringify(args.image)})`, { field: 'isolate.args.image' });
    }
    const network = args.network ?? 'none';
    if (typeof network !== 'string' || network === '') {
      throw new InvalidInputError('invalid_profile', `field "isolate.args.network" must be a Docker network name such as "none" or "bridge" (got ${JSON.stringify(network)})`, { field: 'isolate.args.network' });
    }
    if (!existsSync(spec.appDir)) throw new UnavailableError('spawn_failed', `cannot start ${what}: the app directory ${spec.appDir} does not exist`);

    let container: Dockerode.Container;
    try {
      container = await this.docker.createContainer({
        Image: image,
        Cmd: [spec.command, ...spec.args],
        Env: containerEnv(spec.env),
        WorkingDir: CONTAINER_APP_DIR,
        Labels: { [LABEL_ENGINE]: this.options.engineId, [LABEL_APP]: spec.app, [LABEL_WORKER]: spec.workerId },
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        HostConfig: {
          Binds: this.binds(spec),
          NetworkMode: network,
          ReadonlyRootfs: true,
          Tmpfs: { '/tmp': `rw,size=${this.options.tmpfsSize ?? '64m'}` },
          // An init as pid 1: signals the worker sends itself work, orphans are reaped.
          Init: true,
          ...limitsConfig(spec.limits),
        },
      });
    } catch (error) {
      throw new UnavailableError('spawn_failed', `cannot start ${what}: creating a container of image ${image} failed: ${dockerMessage(error)}`, { cause: error });
    }
    try {
      // Attached and waited on before start, so neither the first line nor a quick exit is missed.
      const stream = (await container.attach({ stream: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
      const wait = container.wait({ condition: 'next-exit' }) as Promise<{ StatusCode: number }>;
      await this.assertCommand(container, spec, image);
      const worker = new DockerWorker(spec.workerId, container, spec.limits, stream, wait, this.docker, () => this.live.delete(container.id));
      this.live.set(container.id, worker);
      try {
        spec.onStart?.();
        await container.start();
      } catch (error) {
        worker.abandon();
        throw error;
      }
      return worker;
    } catch (error) {
      await container.remove({ force: true }).catch(() => undefined);
      throw new UnavailableError('spawn_failed', `cannot start ${what}: command '${spec.command}' failed: ${dockerMessage(error)}`, { cause: error });
    }
  }

  async cleanupOrphans(engineId?: string): Promise<void> {
    const label = engineId === undefined ? LABEL_ENGINE : `${LABEL_ENGINE}=${engineId}`;
    const containers = await this.docker.listContainers({ all: true, filters: { label: [label] } });
    await Promise.all(
      containers
        .filter((info) => !this.live.has(info.Id))
        .map((info) =>
          this.docker
            .getContainer(info.Id)
            .remove({ force: true })
            .catch((error: { statusCode?: number }) => {
              // Gone already, or its removal is already under way.
              if (error.statusCode !== 404 && error.statusCode !== 409) throw error;
            }),
        ),
    );
  }

  async close(): Promise<void> {
    const workers = [...this.live.values()];
    for (const worker of workers) worker.signal('SIGKILL');
    await Promise.all(workers.map((worker) => worker.exited));
  }

  /**
   * The init in the container (pid 1) would start even when the command does not exist, so the
   * command is looked up in the created container first (its mounts included); found ones are
   * remembered per image, app directory and plugin directory.
   */
  private async assertCommand(container: Dockerode.Container, spec: SpawnSpec, image: string): Promise<void> {
    const key = [image, spec.appDir, spec.pluginDir, spec.env.PATH ?? '', spec.command].join('\0');
    if (this.commandsFound.has(key)) return;
    for (const candidate of commandCandidates(spec.command, spec.env.PATH)) {
      let header: string | undefined;
      try {
        const response = (await container.infoArchive({ path: candidate })) as { headers: Record<string, string | undefined>; resume?: () => void };
        response.resume?.();
        header = response.headers['x-docker-container-path-stat'];
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) continue;
        throw error;
      }
      if (header === undefined || isRunnable(header)) {
        if (this.commandsFound.size > 10_000) this.commandsFound.clear();
        this.commandsFound.add(key);
        return;
      }
    }
    throw new Error(`${spec.command}: no such executable in image ${image}${spec.command.includes('/') ? '' : ` (searched PATH ${spec.env.PATH ?? DOCKER_DEFAULT_PATH})`}`);
  }

  private binds(spec: SpawnSpec): string[] {
    const plugin = pluginMount(spec.pluginDir, this.packageRoot);
    // The engine listens before it spawns: then only the worker's own socket is mounted, not its neighbours'.
    const socket = join(spec.socketDir, `${spec.workerId}.sock`);
    const socketBind = existsSync(socket) ? `${socket}:${containerEndpoint(spec.workerId)}` : `${spec.socketDir}:${CONTAINER_SOCKET_DIR}`;
    const binds = [`${spec.appDir}:${CONTAINER_APP_DIR}:ro`, socketBind, `${plugin.bind.host}:${plugin.bind.container}:ro`];
    // Built-in runtimes may import the package's dependencies (the native host loads koffi).
    const modules = join(this.packageRoot, 'node_modules');
    if (plugin.bind.container !== CONTAINER_PLUGIN_DIR && existsSync(modules)) {
      binds.push(`${modules}:${CONTAINER_PACKAGE_DIR}/node_modules:ro`);
    }
    return binds;
  }
}

class DockerWorker implements WorkerProcess {
  readonly exited: Promise<ExitInfo>;
  private readonly output = new OutputFanout(EARLY_BYTES);
  private done = false;
  private abandoned = false;

  constructor(
    readonly workerId: string,
    private readonly container: Dockerode.Container,
    limits: ResourceLimits,
    stream: NodeJS.ReadableStream,
    wait: Promise<{ StatusCode: number }>,
    docker: Dockerode,
    onGone: () => void,
  ) {
    const output = this.output;
    const sink = (name: OutputStream) =>
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          output.deliver(name, chunk);
          callback();
        },
      });
    docker.modem.demuxStream(stream, sink('stdout'), sink('stderr'));
    const outputEnded = new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    });
    this.exited = (async (): Promise<ExitInfo> => {
      let status: number | null = null;
      try {
        status = (await wait).StatusCode;
      } catch {
        // The container vanished (removed by someone else): it is gone either way.
      }
      this.done = true;
      await Promise.race([outputEnded, new Promise((resolve) => setTimeout(resolve, OUTPUT_GRACE_MS))]);
      (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      this.output.end();
      let oomKilled = false;
      if (!this.abandoned) {
        try {
          oomKilled = (await container.inspect()).State.OOMKilled;
        } catch {
          // Removed already.
        }
        await container.remove({ force: true }).catch(() => undefined);
      }
      onGone();
      const info = exitInfo(status);
      if (oomKilled) info.reason = `out of memory (limit ${limits.memoryBytes !== undefined ? formatBytes(limits.memoryBytes) : 'unknown'})`;
      return info;
    })();
  }

  onOutput(listener: (stream: OutputStream, line: string) => void): void {
    this.output.listenLines(listener);
  }

  onOutputData(listener: (stream: OutputStream, chunk: Buffer) => void): void {
    this.output.listen(listener);
  }

  signal(signal: 'SIGTERM' | 'SIGKILL'): void {
    if (this.done) return;
    // Errors mean it stopped meanwhile; `exited` reports how.
    this.container.kill({ signal }).catch(() => undefined);
  }

  /** The container never started: spawn() removes it and reports the failure itself. */
  abandon(): void {
    this.abandoned = true;
    this.done = true;
  }

}

/** The PATH Docker gives a container whose image and spec set none. */
const DOCKER_DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function commandCandidates(command: string, path: string | undefined): string[] {
  if (command.includes('/')) return [posix.resolve(CONTAINER_APP_DIR, command)];
  return (path ?? DOCKER_DEFAULT_PATH)
    .split(':')
    .filter(Boolean)
    .map((dir) => posix.join(posix.resolve(CONTAINER_APP_DIR, dir), command));
}

/** From Docker's path stat (base64 JSON, Go file mode): not a directory, and executable unless a symlink. */
function isRunnable(header: string): boolean {
  let mode: number;
  try {
    mode = (JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as { mode: number }).mode;
  } catch {
    return true;
  }
  const GO_DIR = 2 ** 31;
  const GO_SYMLINK = 2 ** 27;
  if (mode >= GO_DIR) return false;
  if (Math.floor(mode / GO_SYMLINK) % 2 === 1) return true;
  return (mode & 0o111) !== 0;
}

/**
 * The init in the container exits with 128 + n when the worker died of signal n; that is reported
 * as the signal (an app that itself exits with such a code is reported the same way).
 */
function exitInfo(status: number | null): ExitInfo {
  if (status === null) return { code: null, signal: 'SIGKILL' };
  if (status > 128 && status <= 128 + 64) {
    const name = Object.entries(constants.signals).find(([, number]) => number === status - 128)?.[0];
    if (name) return { code: null, signal: name };
  }
  return { code: status, signal: null };
}

/**
 * The spec's environment, and nothing Docker would add: a bare `NAME` entry tells Docker to drop
 * the variable (it sets HOSTNAME otherwise).
 */
function containerEnv(env: Record<string, string>): string[] {
  const entries = Object.entries(env).map(([key, value]) => `${key}=${value}`);
  if (!('HOSTNAME' in env)) entries.push('HOSTNAME');
  return entries;
}

function limitsConfig(limits: ResourceLimits): Dockerode.HostConfig {
  const config: Dockerode.HostConfig = {};
  if (limits.memoryBytes !== undefined) {
    config.Memory = limits.memoryBytes;
    config.MemorySwap = limits.memoryBytes;
  }
  if (limits.cpus !== undefined) config.NanoCpus = Math.round(limits.cpus * 1e9);
  if (limits.cpuWeight !== undefined) config.CpuShares = weightToShares(limits.cpuWeight);
  if (limits.pids !== undefined) config.PidsLimit = limits.pids;
  return config;
}

function dockerMessage(error: unknown): string {
  const json = (error as { json?: { message?: string } }).json;
  return (json?.message ?? (error as Error).message ?? String(error)).trim();
}
