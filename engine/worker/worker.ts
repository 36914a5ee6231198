import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { Manifest, Profile } from '../../manifests/types.js';
import type { Plugin } from '../../plugins/types.js';
import { EngineError, UnavailableError, type ErrorCode } from '../errors/index.js';
import { workerBaseEnv } from '../isolate/clean-env.js';
import type { ExitInfo, Isolate, OutputStream, ResourceLimits, WorkerProcess } from '../isolate/types.js';
import {
  CONTROL_CHANNEL,
  FrameType,
  PROTOCOL_VERSION,
  WORKER_CHANNEL_BASE,
  decodeJson,
  type Frame,
  type HandshakePayload,
} from '../protocol/frames.js';
import { MAX_TIMER_MS, setLongTimeout, type LongTimer } from '../util/timers.js';
import type { FrameConnection } from './connection.js';
import { acceptEarly, type EarlyConnection } from './early-connection.js';
import { describeExit, isCleanExit } from './exit-reason.js';
import { OutputRing, ringBytesFor } from './output-ring.js';
import { invokePayload, wireError } from './payloads.js';
import { ServiceChannels, refusedServiceFrame, type ParentInvocation, type ServiceHost } from './service-channels.js';
import { spawnWithin } from './spawn-within.js';

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
  /** Raw output chunks as read (lines are split only when someone reads them). */
  onOutputData?(workerId: string, stream: OutputStream, chunk: Buffer): void;
  /** A channel finished, or the worker started or stopped waiting on calls: its room changed. */
  onChannelClosed?(worker: Worker): void;
  /** Serves SERVICE and LOG frames of version-2 workers; without it they are refused. */
  services?: ServiceHost;
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

interface OpenChannel extends ParentInvocation {
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
  /** Protocol version of its handshake: 1, or 2 (services). */
  protocol = 1;
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
  private services: ServiceChannels | undefined;

  private constructor(
    private readonly options: WorkerStartOptions,
    private readonly process: WorkerProcess,
    id: string,
  ) {
    this.id = id;
    this.app = options.app;
    this.pid = process.pid;
    const lines = Math.max(1, options.profile['crashlog-limit']);
    this.output = new OutputRing(ringBytesFor(lines), lines);
  }

  /** Spawns the worker and resolves once it has handshaken. Rejects with the reason otherwise. */
  static async start(options: WorkerStartOptions): Promise<Worker> {
    const workerId = options.workerId ?? randomUUID();
    const { profile } = options;
    await mkdir(options.socketDir, { recursive: true });
    const socketPath = join(options.socketDir, `${workerId}.sock`);
    const server = createServer();
    // The worker may connect before spawn() returns (a container starts before Docker's answer
    // arrives): the connection is taken from the first moment, never emitted to nobody.
    const connection = acceptEarly(server);
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
      // A runtime's own timers hold at most 2^31-1 ms.
      COCAINE_DISOWN_MS: String(Math.min(MAX_TIMER_MS, Math.max(2_000, Math.round(profile['heartbeat-timeout'] * 2_000)))),
    };

    const timeoutMs = profile['startup-timeout'] * 1000;
    let process: WorkerProcess;
    let deadline: number;
    try {
      const spec = {
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
      };
      ({ process, deadline } = await spawnWithin(options.isolate, spec, timeoutMs, connection));
    } catch (error) {
      server.close();
      connection.cancel();
      await rm(socketPath, { force: true });
      if (error instanceof EngineError) throw error;
      throw new UnavailableError('spawn_failed', `cannot start a worker of app "${options.app}": ${(error as Error).message}`, { cause: error });
    }

    const worker = new Worker(options, process, workerId);
    process.onOutputData((stream, chunk) => {
      worker.output.push('', stream, chunk);
      options.onOutputData?.(workerId, stream, chunk);
    });
    void process.exited.then((exit) => worker.onProcessExit(exit));
    try {
      await worker.awaitHandshake(connection, socketPath, deadline - Date.now(), timeoutMs);
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

  /** Every invocation it runs waits on a handler-to-handler call: it does not count towards pool-limit. */
  get isWaitingOnCalls(): boolean {
    const waiting = this.services?.waitingParents ?? 0;
    return waiting > 0 && waiting >= this.channels.size;
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
    this.channels.set(id, { listener, channel: id, event, headers, deadline, emits: 0 });
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
        this.services?.parentClosed(id, code === 'deadline' ? 'deadline_exceeded' : 'cancelled', message);
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
      const grace = setLongTimeout(() => this.process.signal('SIGKILL'), this.options.profile['termination-timeout'] * 1000).unref();
      void this.process.exited.finally(() => grace.clear());
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

  /** Waits `remainingMs` of the startup-timeout (`timeoutMs`, counted from the process's start). */
  private awaitHandshake(early: EarlyConnection, socketPath: string, remainingMs: number, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (error?: Error) => {
        if (settled) return;
        settled = true;
        timer.clear();
        if (error) reject(error);
        else resolve();
      };
      const timer: LongTimer = setLongTimeout(() => {
        const seconds = timeoutMs / 1000;
        void this.kill('startup_timeout', `did not handshake within the startup-timeout of ${seconds}s`).then((exit) =>
          settle(new UnavailableError('startup_timeout', exit.reason)),
        );
      }, Math.max(0, remainingMs));
      this.onExit((exit) => settle(Object.assign(new UnavailableError(startFailureCode(exit.code), exit.reason), { output: exit.output })));
      void early.connected.then((connection) => {
        if (settled) {
          connection.destroy();
          return;
        }
        this.connection = connection;
        early.attach(
          (frame) => {
            if (!this.handshaken) {
              settle(this.acceptHandshake(frame, socketPath));
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
      void this.kill('spawn_failed', `sent frame type ${frame.type} instead of a handshake (protocol error)`);
      return new UnavailableError('spawn_failed', `worker on ${socketPath} broke the protocol before its handshake`);
    }
    let handshake: HandshakePayload;
    try {
      handshake = decodeJson<HandshakePayload>(frame);
    } catch {
      void this.kill('spawn_failed', 'sent a handshake that is not valid JSON (protocol error)');
      return new UnavailableError('spawn_failed', 'worker sent a malformed handshake');
    }
    if (handshake.worker !== this.id) {
      void this.kill('spawn_failed', `handshook as "${handshake.worker}", expected "${this.id}" (protocol error)`);
      return new UnavailableError('spawn_failed', 'worker handshook with the wrong id');
    }
    const profileConcurrency = this.options.profile.concurrency;
    this.capacity = handshake.concurrency > 0 ? Math.min(handshake.concurrency, profileConcurrency) : profileConcurrency;
    this.events = Array.isArray(handshake.events) ? new Set(handshake.events) : undefined;
    this.runtime = handshake.runtime ?? '';
    this.protocol = handshake.protocol >= 2 ? 2 : 1;
    if (this.protocol >= 2 && this.options.services) {
      const connection = this.connection;
      this.services = new ServiceChannels(
        this.options.services,
        this.app,
        this.id,
        (type, channel, payload) => connection?.send(type, channel, payload),
        () => this.options.onChannelClosed?.(this),
      );
    }
    this.handshaken = true;
    if (this.state === 'starting') this.state = 'active';
    this.idleSince = Date.now();
    this.startHeartbeatWatch();
    // Acknowledges the handshake: the worker hears from the engine at once, not only when its
    // first heartbeat is answered.
    this.connection?.send(FrameType.HEARTBEAT, CONTROL_CHANNEL);
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
          `sent nothing for ${(silentFor / 1000).toFixed(1)}s (heartbeat-timeout ${timeoutMs / 1000}s): hung`,
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
      else if (frame.type === FrameType.LOG || frame.type === FrameType.SERVICE) this.onServiceFrame(frame);
      return;
    }
    if (frame.type === FrameType.SERVICE || frame.type === FrameType.LOG || frame.channel >= WORKER_CHANNEL_BASE) {
      this.onServiceFrame(frame);
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
        this.services?.parentClosed(frame.channel, 'cancelled', 'the invocation it belongs to has finished');
        this.afterChannelClosed();
        open.listener.onEnd();
        return;
      case FrameType.ERROR: {
        this.channels.delete(frame.channel);
        this.services?.parentClosed(frame.channel, 'cancelled', 'the invocation it belongs to has finished');
        this.afterChannelClosed();
        open.listener.onError(wireError(frame));
        return;
      }
      default:
        void this.kill('worker_crashed', `sent unknown frame type ${frame.type} on channel ${frame.channel} (protocol error)`);
    }
  }

  /** SERVICE and LOG frames, and frames on worker channels: version 2 only. */
  private onServiceFrame(frame: Frame): void {
    const violation = this.services ? this.services.onFrame(frame, (channel) => this.channels.get(channel)) : refusedServiceFrame(frame, this.protocol);
    if (violation) void this.kill('worker_crashed', violation);
  }

  private afterChannelClosed(): void {
    if (this.channels.size === 0) this.idleSince = Date.now();
    this.options.onChannelClosed?.(this);
  }

  private onConnectionClosed(error?: Error): void {
    if (error && !this.killCode) {
      void this.kill('worker_crashed', `broke the protocol: ${error.message}`);
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
    const when = this.handshaken || this.killCode === 'startup_timeout' || this.killCode === 'spawn_failed' ? '' : ' before its handshake';
    const reason = `worker ${this.id.slice(0, 8)} of app "${this.app}" ${what}${when}${tail ? `; last output: ${tail}` : ''}`;
    this.exitInfo = { workerId: this.id, exit, code, reason, expected, handshaken: this.handshaken, output: this.output.all() };
    const failure = new UnavailableError(channelFailureCode(code), expected ? `worker ${this.id.slice(0, 8)} stopped: ${this.killReason}` : reason);
    const open = [...this.channels.values()];
    this.channels.clear();
    this.services?.closeAll(`the calling worker exited: ${reason}`);
    for (const channel of open) channel.listener.onError(failure);
    for (const listener of this.exitListeners.splice(0)) listener(this.exitInfo);
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
