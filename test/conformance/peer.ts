/**
 * The kit's engine side for the direct checks: listens on a private unix socket, starts one
 * worker of the runtime under test with the COCAINE_* environment, and records everything it
 * sends, frame by frame, including what a stricter engine would reject (frames over 64 MiB,
 * frames on a cancelled channel). Unlike the engine it never kills the worker on its own: the
 * lifecycle checks need to see whether the runtime exits by itself.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FrameType, HEADER_SIZE, MAX_FRAME_PAYLOAD, WORKER_CHANNEL_BASE, encodeFrame, encodeHeader, encodeJson } from '../../engine/protocol/frames.js';
import { recordServiceFrame, type KitServiceChannel } from './peer-services.js';
import { collectLines } from '../helpers/protocol-peer.js';

export type { KitServiceChannel } from './peer-services.js';

export interface LaunchSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
}

export interface SeenFrame {
  type: number;
  channel: number;
  length: number;
  at: number;
}

export interface KitChannel {
  readonly id: number;
  readonly chunks: Buffer[];
  /** Every frame the worker sent on this channel, in order. */
  readonly frames: SeenFrame[];
  /** Frames that arrived after the kit cancelled the channel. */
  readonly afterCancel: SeenFrame[];
  /** Resolves at the worker's END or ERROR (or when the worker goes away: `gone`). */
  readonly done: Promise<{ end: boolean; error?: { code: string; message: string }; gone?: string }>;
  cancelledAt?: number;
}

export interface Exit {
  code: number | null;
  signal: string | null;
}

export class KitPeer {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  /** The first frame the worker sent, and its handshake's raw JSON text. */
  firstFrame?: SeenFrame;
  handshakeText?: string;
  readonly heartbeatsAt: number[] = [];
  /** Frames whose payload exceeded MAX_FRAME_PAYLOAD. */
  readonly oversize: SeenFrame[] = [];
  readonly exited: Promise<Exit>;
  exit?: Exit;
  readonly pid: number;
  private readonly channels = new Map<number, KitChannel & { finish(result: Awaited<KitChannel['done']>): void }>();
  /** Channels the worker opened with SERVICE, by id. */
  readonly services = new Map<number, KitServiceChannel>();
  private readonly serviceWaiters: Array<() => void> = [];
  private nextChannel = 1;
  private socket?: Socket;
  private readonly queued: Buffer[] = [];
  private readonly handshakeWaiters: Array<() => void> = [];
  private gone?: string;

  private constructor(
    private readonly dir: string,
    private readonly server: Server,
    spec: LaunchSpec,
    readonly endpoint: string,
    readonly workerId: string,
  ) {
    const child = spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.pid = child.pid ?? -1;
    collectLines(child.stdout!, this.stdout);
    collectLines(child.stderr!, this.stderr);
    this.exited = new Promise<Exit>((resolve) => {
      child.once('error', (error) => {
        this.stderr.push(`spawn failed: ${error.message}`);
        resolve({ code: null, signal: null });
      });
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    void this.exited.then((exit) => {
      this.exit = exit;
      this.goneAway(`worker exited (code ${exit.code}, signal ${exit.signal})`);
    });
    server.on('connection', (connection) => this.accept(connection));
  }

  /** Listens, then starts the worker; `spec(endpoint, workerId)` says how. */
  static async start(spec: (endpoint: string, workerId: string) => LaunchSpec): Promise<KitPeer> {
    const dir = mkdtempSync(join(tmpdir(), 'cocaine-kit-'));
    const endpoint = join(dir, 'worker.sock');
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(endpoint, () => resolve());
    });
    const workerId = randomUUID();
    return new KitPeer(dir, server, spec(endpoint, workerId), endpoint, workerId);
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Still connected and running: fit for more checks. */
  get usable(): boolean {
    return this.alive && this.gone === undefined;
  }

  /** Resolves once the worker's first frame arrived, or it went away; false on timeout. */
  async firstFrameWithin(ms: number): Promise<boolean> {
    if (this.firstFrame || this.gone) return this.firstFrame !== undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.handshakeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.firstFrame !== undefined;
  }

  /** Resolves with the exit if the worker exits within `ms`, else undefined. */
  async exitWithin(ms: number): Promise<Exit | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
    const result = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    return result;
  }

  invoke(event: string, body: Array<Buffer | string> = [], headers: Record<string, string> = {}): KitChannel {
    const id = this.nextChannel++;
    let finish!: (result: Awaited<KitChannel['done']>) => void;
    const done = new Promise<Awaited<KitChannel['done']>>((resolve) => (finish = resolve));
    const channel = { id, chunks: [] as Buffer[], frames: [] as SeenFrame[], afterCancel: [] as SeenFrame[], done, finish, cancelledAt: undefined as number | undefined };
    this.channels.set(id, channel);
    this.send(encodeJson(FrameType.INVOKE, id, { event, headers, deadline: 0 }));
    for (const part of body) {
      const data = typeof part === 'string' ? Buffer.from(part) : part;
      this.send(encodeHeader(FrameType.CHUNK, id, data.length));
      this.send(data);
    }
    this.send(encodeFrame(FrameType.END, id));
    if (this.gone) finish({ end: false, gone: this.gone });
    return channel;
  }

  /** Cancels the way the engine does; frames arriving later are recorded in `afterCancel`. */
  cancel(channel: KitChannel, code: 'cancelled' | 'deadline' = 'cancelled'): void {
    (channel as { cancelledAt?: number }).cancelledAt = Date.now();
    this.send(encodeJson(FrameType.ERROR, channel.id, { code, message: `${code} by the conformance kit` }));
  }

  /** Resolves once `test` holds for the worker's service channels (checked on every frame); false on timeout or when the worker went away. */
  async serviceWithin(ms: number, test: (services: KitServiceChannel[]) => boolean): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!test([...this.services.values()])) {
      const left = deadline - Date.now();
      if (left <= 0 || this.gone) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.serviceWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  /** Answers a worker's service channel as the engine does: CHUNKs then END, or one ERROR. */
  answerService(id: number, answer: { chunks: Array<Buffer | string> } | { error: { code: string; message: string } }): void {
    if ('error' in answer) {
      this.send(encodeJson(FrameType.ERROR, id, answer.error));
      return;
    }
    for (const chunk of answer.chunks) this.send(encodeFrame(FrameType.CHUNK, id, typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    this.send(encodeFrame(FrameType.END, id));
  }

  terminate(): void {
    this.send(encodeJson(FrameType.TERMINATE, 0, { code: 0, reason: 'conformance kit: terminate' }));
  }

  sendRaw(type: number, channel: number, payload: Buffer = Buffer.alloc(0)): void {
    this.send(encodeFrame(type, channel, payload));
  }

  /** Stops reading the socket (a slow engine): the worker's writes back up. */
  pauseReading(): void {
    this.socket?.pause();
  }

  resumeReading(): void {
    this.socket?.resume();
  }

  /** Closes the engine's end of the socket: the worker sees EOF. */
  closeSocket(): void {
    this.socket?.destroy();
    this.server.close();
  }

  kill(): void {
    if (!this.alive || this.pid <= 0) return;
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  async close(): Promise<void> {
    this.kill();
    await this.exited;
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private send(data: Buffer): void {
    if (this.socket) {
      if (!this.socket.destroyed) this.socket.write(data);
    } else {
      this.queued.push(data);
    }
  }

  private accept(connection: Socket): void {
    if (this.socket) {
      connection.destroy();
      return;
    }
    this.socket = connection;
    connection.on('error', () => {});
    connection.once('close', () => this.goneAway('worker closed the socket'));
    const decoder = new TolerantDecoder((frame, payload) => this.onFrame(frame, payload));
    connection.on('data', (data: Buffer) => decoder.push(data));
    for (const data of this.queued.splice(0)) connection.write(data);
  }

  private onFrame(frame: SeenFrame, payload: Buffer | undefined): void {
    if (!this.firstFrame) {
      this.firstFrame = frame;
      if (frame.type === FrameType.HANDSHAKE && payload) this.handshakeText = payload.toString('utf8');
      for (const waiter of this.handshakeWaiters.splice(0)) waiter();
      return;
    }
    if (payload === undefined) this.oversize.push(frame);
    if (frame.channel === 0) {
      if (frame.type === FrameType.HEARTBEAT) {
        this.heartbeatsAt.push(frame.at);
        this.send(encodeFrame(FrameType.HEARTBEAT, 0));
      }
      return;
    }
    if (frame.channel >= WORKER_CHANNEL_BASE) {
      this.onServiceFrame(frame, payload);
      return;
    }
    const channel = this.channels.get(frame.channel);
    if (!channel) return;
    if (channel.cancelledAt !== undefined) {
      channel.afterCancel.push(frame);
      return;
    }
    channel.frames.push(frame);
    if (frame.type === FrameType.CHUNK) {
      if (payload) channel.chunks.push(Buffer.from(payload));
    } else if (frame.type === FrameType.END) {
      channel.finish({ end: true });
    } else if (frame.type === FrameType.ERROR) {
      let error = { code: '?', message: payload?.toString('utf8') ?? '' };
      try {
        const parsed = JSON.parse(payload?.toString('utf8') ?? '') as { code?: unknown; message?: unknown };
        error = { code: String(parsed.code), message: String(parsed.message ?? '') };
      } catch {
        // not JSON: reported as code "?"
      }
      channel.finish({ end: false, error });
    }
  }

  private onServiceFrame(frame: SeenFrame, payload: Buffer | undefined): void {
    recordServiceFrame(this.services, frame, payload);
    for (const waiter of this.serviceWaiters.splice(0)) waiter();
  }

  private goneAway(reason: string): void {
    if (this.gone) return;
    this.gone = reason;
    for (const waiter of this.handshakeWaiters.splice(0)) waiter();
    for (const waiter of this.serviceWaiters.splice(0)) waiter();
    for (const channel of this.channels.values()) channel.finish({ end: false, gone: reason });
  }
}

/**
 * A frame decoder that survives what the engine's rejects: a payload over MAX_FRAME_PAYLOAD is
 * skipped (reported with payload undefined) instead of ending the stream.
 */
class TolerantDecoder {
  private buffer: Buffer = Buffer.alloc(0);
  private skipping?: { frame: SeenFrame; left: number };
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private need = 0;

  constructor(private readonly onFrame: (frame: SeenFrame, payload: Buffer | undefined) => void) {}

  push(data: Buffer): void {
    if (this.skipping) {
      const used = Math.min(this.skipping.left, data.length);
      this.skipping.left -= used;
      data = data.subarray(used);
      if (this.skipping.left > 0) return;
      this.onFrame(this.skipping.frame, undefined);
      this.skipping = undefined;
    }
    if (this.need > 0) {
      // Collecting a large frame: concatenate once it is complete.
      this.partial.push(data);
      this.partialBytes += data.length;
      if (this.partialBytes < this.need) return;
      data = Buffer.concat(this.partial, this.partialBytes);
      this.partial = [];
      this.partialBytes = 0;
      this.need = 0;
    } else if (this.buffer.length > 0) {
      data = Buffer.concat([this.buffer, data]);
      this.buffer = Buffer.alloc(0);
    }
    let offset = 0;
    while (data.length - offset >= HEADER_SIZE) {
      const frame: SeenFrame = { type: data[offset], channel: data.readUInt32BE(offset + 1), length: data.readUInt32BE(offset + 5), at: Date.now() };
      if (frame.length > MAX_FRAME_PAYLOAD) {
        const available = data.length - offset - HEADER_SIZE;
        if (available >= frame.length) {
          this.onFrame(frame, undefined);
          offset += HEADER_SIZE + frame.length;
          continue;
        }
        this.skipping = { frame, left: frame.length - available };
        return;
      }
      const end = offset + HEADER_SIZE + frame.length;
      if (end > data.length) {
        this.need = end - offset;
        break;
      }
      this.onFrame(frame, data.subarray(offset + HEADER_SIZE, end));
      offset = end;
    }
    const rest = data.subarray(offset);
    if (this.need > 0) {
      this.partial = [rest];
      this.partialBytes = rest.length;
    } else {
      this.buffer = rest;
    }
  }
}
