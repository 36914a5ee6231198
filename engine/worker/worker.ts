import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Manifest, Profile } from '../../manifests/types.js';
import type { Plugin } from '../../plugins/types.js';
import { EngineError, HandlerError, NotFoundError, UnavailableError, type ErrorCode } from '../errors/index.js';
import { workerBaseEnv } from '../isolate/clean-env.js';
import type { ExitInfo, Isolate, OutputStream, ResourceLimits, WorkerProcess } from '../isolate/types.js';
import {
  CONTROL_CHANNEL,
  FrameType,
  PROTOCOL_VERSION,
  decodeJson,
  type ErrorPayload,
  type Frame,
  type HandshakePayload,
} from '../protocol/frames.js';
import { FrameConnection } from './connection.js';
import { describeExit, isCleanExit } from './exit-reason.js';
import { OutputRing } from './output-ring.js';

export interface ChannelListener {
  onChunk(chunk: Buffer): void;
  onEnd(): void;
  onError(error: EngineError): void;
}

export interface WorkerChannel {
  readonly id: number;
  write(chunk: Buffer): void;
  end(): void;
  /** Tells the worker to stop this invocation; the listener gets nothing more. */
  cancel(code: 'cancelled' | 'deadline', message: string): void;
}

export interface WorkerStartOptions {
  app: string;
  workerId?: string;
  plugin: Plugin;
  isolate: Isolate;
  manifest: Manifest;
  profile: Profile;
  /** Host paths. */
  appDir: string;
  socketDir: string;
  limits: ResourceLimits;
  isolateArgs: Record<string, unknown>;
  onOutput?(workerId: string, stream: OutputStream, line: string): void;
  /** A channel finished: the worker has room for another session. */
  onChannelClosed?(worker: Worker): void;
}

export interface WorkerExit {
  workerId: string;
  exit: ExitInfo;
  /** Stable code: worker_crashed, spawn_failed, startup_timeout, heartbeat_timeout, or '' when asked to stop. */
  code: ErrorCode | '';
  /** One sentence for users: what happened and the last output lines. */
  reason: string;
  /** We asked it to stop (terminate, idle, shutdown) and it did. */
  expected: boolean;
  handshaken: boolean;
  output: string[];
}

type State = 'starting' | 'active' | 'terminating' | 'dead';

interface OpenChannel {
  listener: ChannelListener;
}

const HEARTBEAT_MIN_MS = 50;
const HEARTBEAT_MAX_MS = 5_000;

/** The engine-side handle of one worker process: socket, heartbeats, sessions, output. */
export class Worker {
  readonly id: string;
  readonly app: string;
  readonly pid: number | undefined;
  /** Sessions it takes at once (the profile's concurrency, bounded by what the runtime declared). */
  capacity = 1;
  /** Events the runtime declared in its handshake, if any. */
  events: ReadonlySet<string> | undefined;
  runtime = '';
  /** When it last became idle (no open channel), epoch ms. */
  idleSince = Date.now();

  private state: State = 'starting';
  private connection: FrameConnection | undefined;
  private readonly channels = new Map<number, OpenChannel>();
  private nextChannel = 1;
  private readonly output: OutputRing;
  private readonly exitListeners: Array<(exit: WorkerExit) => void> = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private killCode: ErrorCode | '' = '';
  private killReason = '';
  private exitInfo: WorkerExit | undefined;
  private handshaken = false;

  private constructor(
    private readonly options: WorkerStartOptions,
    private readonly process: WorkerProcess,
    id: string,
  ) {
    this.id = id;
    this.app = options.app;
    this.pid = process.pid;
    this.output = new OutputRing(Math.max(1, options.profile['crashlog-limit']));
  }

  /** Spawns the worker and resolves once it has handshaken. Rejects with the reason otherwise. */
  static async start(options: WorkerStartOptions): Promise<Worker> {
    const workerId = options.workerId ?? randomUUID();
    const { profile } = options;
    await mkdir(options.socketDir, { recursive: true });
    const socketPath = join(options.socketDir, `${workerId}.sock`);
    const server = createServer();
    // Listened for before the spawn: a quick runtime connects before a slow spawn() returns (docker
    // answers `start` after the process runs), and a 'connection' nobody listens for is lost.
    const connection = new Promise<Socket>((resolve) => server.once('connection', resolve));
    await listen(server, socketPath);

    const paths = options.isolate.workerPaths({
      appDir: options.appDir,
      socketDir: options.socketDir,
      pluginDir: options.plugin.runtimeDir,
      workerId,
    });
    const placement = options.isolate.type === 'docker' ? 'container' : 'host';
    const launch = options.plugin.launch({
      app: options.app,
      workerId,
      entrypoint: options.manifest.entrypoint,
      appDir: paths.appDir,
      endpoint: paths.endpoint,
      pluginDir: paths.pluginDir,
      environment: options.manifest.environment,
      placement,
    });
    const heartbeatMs = clamp((profile['heartbeat-timeout'] * 1000) / 4, HEARTBEAT_MIN_MS, HEARTBEAT_MAX_MS);
    const env: Record<string, string> = {
      ...workerBaseEnv(),
      ...options.manifest.environment,
      ...launch.env,
      COCAINE_PROTOCOL: String(PROTOCOL_VERSION),
      COCAINE_APP: options.app,
      COCAINE_WORKER_ID: workerId,
      COCAINE_ENDPOINT: paths.endpoint,
      COCAINE_ENTRYPOINT: options.manifest.entrypoint,
      COCAINE_HEARTBEAT_MS: String(Math.round(heartbeatMs)),
      COCAINE_DISOWN_MS: String(Math.max(2_000, Math.round(profile['heartbeat-timeout'] * 2_000))),
    };

    let process: WorkerProcess;
    try {
      process = await options.isolate.spawn({
        workerId,
        app: options.app,
        command: launch.command,
        args: launch.args,
        env,
        appDir: options.appDir,
        socketDir: options.socketDir,
        pluginDir: options.plugin.runtimeDir,
        limits: options.limits,
        isolateArgs: options.isolateArgs,
      });
    } catch (error) {
      server.close();
      await rm(socketPath, { force: true });
      if (error instanceof EngineError) throw error;
      throw new UnavailableError('spawn_failed', `cannot start a worker of app "${options.app}": ${(error as Error).message}`, { cause: error });
    }

    const worker = new Worker(options, process, workerId);
    process.onOutput((stream, line) => {
      worker.output.push(line);
      options.onOutput?.(workerId, stream, line);
    });
    void process.exited.then((exit) => worker.onProcessExit(exit));
    try {
      await worker.awaitHandshake(server, connection, socketPath, profile['startup-timeout'] * 1000);
    } finally {
      server.close();
      await rm(socketPath, { force: true });
    }
    return worker;
  }

  get isActive(): boolean {
    return this.state === 'active';
  }

  get load(): number {
    return this.channels.size;
  }

  get isDead(): boolean {
    return this.state === 'dead';
  }

  lastOutput(): string[] {
    return this.output.all();
  }

  onExit(listener: (exit: WorkerExit) => void): void {
    if (this.exitInfo) listener(this.exitInfo);
    else this.exitListeners.push(listener);
  }

  /** Opens an invocation channel. The caller checks `isActive` and `load < capacity` first. */
  open(event: string, headers: Record<string, string>, deadline: number, listener: ChannelListener): WorkerChannel {
    const connection = this.connection;
    if (this.state !== 'active' || !connection) {
      throw new UnavailableError('worker_unavailable', `worker ${this.id} is not active`);
    }
    const id = this.nextChannel++;
    this.channels.set(id, { listener });
    connection.send(FrameType.INVOKE, id, invokePayload(event, headers, deadline));
    const channels = this.channels;
    return {
      id,
      write(chunk: Buffer) {
        if (channels.has(id)) connection.send(FrameType.CHUNK, id, chunk);
      },
      end() {
        if (channels.has(id)) connection.send(FrameType.END, id);
      },
      cancel: (code, message) => {
        if (!channels.delete(id)) return;
        connection.send(FrameType.ERROR, id, Buffer.from(JSON.stringify({ code, message })));
        this.afterChannelClosed();
      },
    };
  }

  /** Asks the worker to exit, waits `termination-timeout`, then kills it. Resolves when reaped. */
  async terminate(reason: string): Promise<WorkerExit> {
    if (this.state !== 'dead' && this.state !== 'terminating') {
      this.state = 'terminating';
      this.killReason = reason;
      this.connection?.send(FrameType.TERMINATE, CONTROL_CHANNEL, Buffer.from(JSON.stringify({ code: 0, reason })));
      const grace = setTimeout(() => this.process.signal('SIGKILL'), this.options.profile['termination-timeout'] * 1000);
      grace.unref();
      void this.process.exited.finally(() => clearTimeout(grace));
    }
    return this.waitExit();
  }

  /** Kills at once, with the reason its calls and crashlog will carry. */
  kill(code: ErrorCode, reason: string): Promise<WorkerExit> {
    if (this.state !== 'dead') {
      if (!this.killCode) {
        this.killCode = code;
        this.killReason = reason;
      }
      this.state = 'terminating';
      this.process.signal('SIGKILL');
    }
    return this.waitExit();
  }

  private waitExit(): Promise<WorkerExit> {
    return new Promise((resolve) => this.onExit(resolve));
  }

  private awaitHandshake(server: Server, connection: Promise<Socket>, socketPath: string, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (error?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      const timer = setTimeout(() => {
        const seconds = timeoutMs / 1000;
        void this.kill('startup_timeout', `worker did not handshake within the startup-timeout of ${seconds}s`).then((exit) =>
          settle(new UnavailableError('startup_timeout', exit.reason)),
        );
      }, timeoutMs);
      this.onExit((exit) => settle(Object.assign(new UnavailableError(startFailureCode(exit.code), exit.reason), { output: exit.output })));
      void connection.then((socket: Socket) => {
        server.close();
        this.connection = new FrameConnection(
          socket,
          (frame) => {
            if (!this.handshaken) {
              const error = this.acceptHandshake(frame, socketPath);
              settle(error);
              return;
            }
            this.onFrame(frame);
          },
          (error) => this.onConnectionClosed(error),
        );
      });
    });
  }

  private acceptHandshake(frame: Frame, socketPath: string): Error | undefined {
    if (frame.type !== FrameType.HANDSHAKE || frame.channel !== CONTROL_CHANNEL) {
      void this.kill('spawn_failed', `worker sent frame type ${frame.type} before its handshake (protocol error)`);
      return new UnavailableError('spawn_failed', `worker on ${socketPath} broke the protocol before its handshake`);
    }
    let handshake: HandshakePayload;
    try {
      handshake = decodeJson<HandshakePayload>(frame);
    } catch {
      void this.kill('spawn_failed', 'worker sent a handshake that is not valid JSON (protocol error)');
      return new UnavailableError('spawn_failed', 'worker sent a malformed handshake');
    }
    if (handshake.worker !== this.id) {
      void this.kill('spawn_failed', `worker handshook as "${handshake.worker}", expected "${this.id}"`);
      return new UnavailableError('spawn_failed', 'worker handshook with the wrong id');
    }
    const profileConcurrency = this.options.profile.concurrency;
    this.capacity = handshake.concurrency > 0 ? Math.min(handshake.concurrency, profileConcurrency) : profileConcurrency;
    this.events = Array.isArray(handshake.events) ? new Set(handshake.events) : undefined;
    this.runtime = handshake.runtime ?? '';
    this.handshaken = true;
    if (this.state === 'starting') this.state = 'active';
    this.idleSince = Date.now();
    this.startHeartbeatWatch();
    return undefined;
  }

  private startHeartbeatWatch(): void {
    const timeoutMs = this.options.profile['heartbeat-timeout'] * 1000;
    const period = clamp(timeoutMs / 4, 10, 1_000);
    this.heartbeatTimer = setInterval(() => {
      const connection = this.connection;
      if (!connection || this.state === 'dead') return;
      const silentFor = Date.now() - connection.lastReceivedAt;
      if (silentFor > timeoutMs) {
        void this.kill(
          'heartbeat_timeout',
          `worker sent no heartbeat for ${(silentFor / 1000).toFixed(1)}s (heartbeat-timeout ${timeoutMs / 1000}s): hung, killed`,
        );
      }
    }, period);
    this.heartbeatTimer.unref();
  }

  private onFrame(frame: Frame): void {
    const connection = this.connection;
    if (!connection) return;
    if (frame.channel === CONTROL_CHANNEL) {
      if (frame.type === FrameType.HEARTBEAT) connection.send(FrameType.HEARTBEAT, CONTROL_CHANNEL);
      else if (frame.type === FrameType.TERMINATE && this.state === 'active') this.state = 'terminating';
      return;
    }
    const open = this.channels.get(frame.channel);
    if (!open) return; // finished or cancelled channel: dropped, never an error
    switch (frame.type) {
      case FrameType.CHUNK:
        open.listener.onChunk(frame.payload);
        return;
      case FrameType.END:
        this.channels.delete(frame.channel);
        this.afterChannelClosed();
        open.listener.onEnd();
        return;
      case FrameType.ERROR: {
        this.channels.delete(frame.channel);
        this.afterChannelClosed();
        open.listener.onError(wireError(frame));
        return;
      }
      default:
        void this.kill('worker_crashed', `worker sent unknown frame type ${frame.type} on channel ${frame.channel} (protocol error)`);
    }
  }

  private afterChannelClosed(): void {
    if (this.channels.size === 0) this.idleSince = Date.now();
    this.options.onChannelClosed?.(this);
  }

  private onConnectionClosed(error?: Error): void {
    if (error && !this.killCode) {
      void this.kill('worker_crashed', `worker broke the protocol: ${error.message}`);
      return;
    }
    if (this.state === 'dead') return;
    // The socket went away: the process is exiting. Give it a moment to be reaped, then make sure.
    const reap = setTimeout(() => this.process.signal('SIGKILL'), 2_000);
    reap.unref();
    void this.process.exited.finally(() => clearTimeout(reap));
  }

  private onProcessExit(exit: ExitInfo): void {
    if (this.exitInfo) return;
    const wasTerminating = this.state === 'terminating' && !this.killCode;
    this.state = 'dead';
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.connection?.destroy();
    const expected = wasTerminating && (isCleanExit(exit) || exit.signal === 'SIGKILL' || exit.signal === 'SIGTERM');
    const code: ErrorCode | '' = expected ? '' : this.killCode || (this.handshaken ? 'worker_crashed' : 'spawn_failed');
    const what = this.killReason && this.killCode ? `${this.killReason} (${describeExit(exit)})` : describeExit(exit);
    const tail = this.output.tail(5);
    const reason = `worker ${this.id.slice(0, 8)} of app "${this.app}" ${what}${this.handshaken ? '' : ' before its handshake'}${tail ? `; last output: ${tail}` : ''}`;
    this.exitInfo = { workerId: this.id, exit, code, reason, expected, handshaken: this.handshaken, output: this.output.all() };
    const failure = new UnavailableError(channelFailureCode(code), expected ? `worker ${this.id.slice(0, 8)} stopped: ${this.killReason}` : reason);
    const open = [...this.channels.values()];
    this.channels.clear();
    for (const channel of open) channel.listener.onError(failure);
    for (const listener of this.exitListeners.splice(0)) listener(this.exitInfo);
  }
}

const NO_HEADERS = '{}';

/** The INVOKE payload, without a JSON.stringify of an object per call on the hot path. */
function invokePayload(event: string, headers: Record<string, string>, deadline: number): Buffer {
  let encodedHeaders = NO_HEADERS;
  for (const _key in headers) {
    encodedHeaders = JSON.stringify(headers);
    break;
  }
  return Buffer.from(`{"event":${JSON.stringify(event)},"headers":${encodedHeaders},"deadline":${deadline}}`);
}

function wireError(frame: Frame): EngineError {
  let payload: ErrorPayload;
  try {
    payload = decodeJson<ErrorPayload>(frame);
  } catch {
    return new EngineError('protocol_error', 'worker sent a malformed ERROR frame');
  }
  const message = String(payload.message ?? '');
  switch (payload.code) {
    case 'not_found':
      return new NotFoundError('event_not_found', message || 'no handler for this event');
    case 'handler':
      return new HandlerError(message);
    case 'deadline':
      return new EngineError('deadline_exceeded', message || 'deadline exceeded');
    case 'cancelled':
      return new EngineError('cancelled', message || 'cancelled');
    case 'protocol':
      return new EngineError('protocol_error', message);
    default:
      return new EngineError('internal', message || `worker error ${String(payload.code)}`);
  }
}

function channelFailureCode(code: ErrorCode | ''): 'worker_crashed' | 'heartbeat_timeout' | 'worker_unavailable' {
  return code === 'heartbeat_timeout' ? code : code ? 'worker_crashed' : 'worker_unavailable';
}

function startFailureCode(code: ErrorCode | ''): 'spawn_failed' | 'startup_timeout' | 'worker_crashed' {
  return code === 'startup_timeout' || code === 'worker_crashed' ? code : 'spawn_failed';
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
