/**
 * An engine-side test peer for worker runtimes: listens on a private unix socket, starts the
 * worker with the COCAINE_* environment (docs/worker-protocol.md), and speaks the protocol with
 * it. Used by the runtime tests of every language plugin.
 *
 *   const peer = await startPeer({ command: process.execPath, args: [hostJs], cwd: appDir });
 *   await peer.handshake;
 *   const { chunks, error } = await peer.invoke('echo', Buffer.from('hi'));
 *   await peer.close();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { workerBaseEnv } from '../../engine/isolate/clean-env.js';
import {
  FrameDecoder,
  FrameType,
  decodeJson,
  encodeFrame,
  encodeHeader,
  encodeJson,
  type ErrorPayload,
  type Frame,
  type HandshakePayload,
  type TerminatePayload,
} from '../../engine/protocol/frames.js';

/** Worker-opened channels have the high bit set (docs/worker-protocol.md, "Services"). */
const WORKER_CHANNEL_BASE = 0x80000000;

export interface PeerOptions {
  command: string;
  args?: string[];
  /** The app directory (the worker's working directory). */
  cwd: string;
  /** Extra environment (added to PATH/HOME/LANG and the COCAINE_* variables, may override them). */
  env?: Record<string, string>;
  /** COCAINE_ENTRYPOINT; default `index.js`. */
  entrypoint?: string;
  app?: string;
  heartbeatMs?: number;
  disownMs?: number;
  /** Answer the worker's heartbeats (the engine does); false to test the disown timeout. */
  answerHeartbeats?: boolean;
  /** COCAINE_PROTOCOL announced to the worker; default 2. */
  protocol?: number;
  /**
   * Answers the worker's SERVICE requests (protocol version 2) the way an engine would; without it
   * every request gets ERROR `internal`. The body is the request's CHUNKs up to its END.
   */
  onService?: (request: ServiceRequest) => Promise<ServiceReply> | ServiceReply;
}

/** A SERVICE request the worker opened (docs/worker-protocol.md, "Services"). */
export interface ServiceRequest {
  channel: number;
  service: string;
  parent: number;
  args: Record<string, unknown>;
  body: Buffer;
}

/** The peer's answer: result chunks then END, or one ERROR. */
export type ServiceReply = { chunks?: Array<Buffer | string>; json?: unknown } | { error: ErrorPayload | { code: string; message: string } };

export interface LogRecord {
  channel: number;
  level: string;
  message: string;
  fields?: Record<string, unknown>;
}

export interface InvokeOptions {
  headers?: Record<string, string>;
  deadline?: number;
}

export interface InvokeResult {
  chunks: Buffer[];
  error?: ErrorPayload;
}

export interface PeerStream {
  channel: number;
  /** Sends one body chunk. */
  write(chunk: Buffer | string): void;
  /** Closes the request body (END). */
  end(): void;
  /** Result chunks as they arrive; throws the worker's ERROR as an Error with `payload`. */
  chunks: AsyncIterable<Buffer>;
  /** Resolves once the worker sent END or ERROR (or the worker went away: error code `internal`). */
  result: Promise<InvokeResult>;
}

export interface Peer {
  readonly workerId: string;
  readonly pid: number;
  /** Resolves with the worker's HANDSHAKE; rejects if the worker exits or the socket closes first. */
  readonly handshake: Promise<HandshakePayload>;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  readonly stdout: string[];
  readonly stderr: string[];
  /** TERMINATE frames the worker sent. */
  readonly terminations: TerminatePayload[];
  /** HEARTBEATs received from the worker. */
  readonly heartbeats: number;
  /** SERVICE requests the worker made, in order (answered or not). */
  readonly services: ServiceRequest[];
  /** ERROR frames the worker sent on its own service channels (a cancelled call), by channel. */
  readonly serviceCancels: Map<number, ErrorPayload>;
  /** LOG frames the worker sent. */
  readonly logs: LogRecord[];
  /** Milliseconds from spawn to each milestone, once reached. */
  readonly timing: { handshakeMs?: number; firstResultByteMs?: number };
  invoke(event: string, body?: Buffer | string | Array<Buffer | string>, options?: InvokeOptions): Promise<InvokeResult>;
  invokeStream(event: string, options?: InvokeOptions): PeerStream;
  /** Cancels a channel the way the engine does (ERROR {code}). */
  cancel(channel: number, code?: 'cancelled' | 'deadline'): void;
  terminate(code?: number, reason?: string): void;
  /** Sends a raw frame (for malformed-input tests). */
  sendRaw(data: Buffer): void;
  /** Stops / resumes reading the worker's socket: a slow engine, for backpressure tests. */
  pauseReading(): void;
  resumeReading(): void;
  /** Closes the engine side of the socket (the worker must exit). */
  closeSocket(): void;
  /** SIGKILL to the worker's process group. */
  kill(): void;
  /** Kills the worker if alive, closes the socket and removes the temp dir. */
  close(): Promise<void>;
}

interface ChannelState {
  chunks: Buffer[];
  pending: Buffer[];
  waiter?: () => void;
  done: boolean;
  error?: ErrorPayload;
  resolve: (result: InvokeResult) => void;
  result: Promise<InvokeResult>;
}

export async function startPeer(options: PeerOptions): Promise<Peer> {
  const dir = mkdtempSync(join(tmpdir(), 'cocaine-peer-'));
  const endpoint = join(dir, 'worker.sock');
  const workerId = randomUUID();
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(endpoint, () => resolve());
  });

  const env: Record<string, string> = {
    ...workerBaseEnv(),
    COCAINE_PROTOCOL: String(options.protocol ?? 2),
    COCAINE_APP: options.app ?? 'test-app',
    COCAINE_WORKER_ID: workerId,
    COCAINE_ENDPOINT: endpoint,
    COCAINE_ENTRYPOINT: options.entrypoint ?? 'index.js',
    COCAINE_HEARTBEAT_MS: String(options.heartbeatMs ?? 1000),
    COCAINE_DISOWN_MS: String(options.disownMs ?? 10_000),
    ...options.env,
  };
  const answerHeartbeats = options.answerHeartbeats ?? true;
  const startedAt = performance.now();
  const child: ChildProcess = spawn(options.command, options.args ?? [], {
    cwd: options.cwd,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  const stdout: string[] = [];
  const stderr: string[] = [];
  collectLines(child.stdout!, stdout);
  collectLines(child.stderr!, stderr);

  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once('error', (error) => {
      stderr.push(`spawn failed: ${error.message}`);
      resolve({ code: null, signal: null });
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });

  const channels = new Map<number, ChannelState>();
  const services: ServiceRequest[] = [];
  const serviceCancels = new Map<number, ErrorPayload>();
  const logs: LogRecord[] = [];
  /** Worker-opened channels whose request body is still arriving. */
  const opening = new Map<number, { request: ServiceRequest; body: Buffer[] }>();
  const terminations: TerminatePayload[] = [];
  const timing: { handshakeMs?: number; firstResultByteMs?: number } = {};
  let heartbeats = 0;
  let nextChannel = 1;
  let socket: Socket | undefined;
  const queued: Buffer[] = [];

  let resolveHandshake!: (value: HandshakePayload) => void;
  let rejectHandshake!: (error: Error) => void;
  let handshaken = false;
  const handshake = new Promise<HandshakePayload>((resolve, reject) => {
    resolveHandshake = resolve;
    rejectHandshake = reject;
  });
  handshake.catch(() => {});

  const failAll = (message: string) => {
    if (!handshaken) rejectHandshake(new Error(`${message} before the handshake; stderr: ${stderr.join('\n')}`));
    for (const [channel, state] of channels) finish(channel, state, { code: 'internal', message });
  };
  void exited.then(({ code, signal }) => failAll(`worker exited (code ${code}, signal ${signal})`));

  const finish = (channel: number, state: ChannelState, error?: ErrorPayload) => {
    if (state.done) return;
    state.done = true;
    state.error = error;
    channels.delete(channel);
    state.resolve({ chunks: state.chunks, error });
    state.waiter?.();
  };

  const onFrame = (frame: Frame) => {
    if (frame.type === FrameType.LOG) {
      logs.push({ channel: frame.channel, ...decodeJson<Omit<LogRecord, 'channel'>>(frame) });
      return;
    }
    if (frame.channel === 0) {
      if (frame.type === FrameType.HANDSHAKE) {
        handshaken = true;
        timing.handshakeMs = performance.now() - startedAt;
        resolveHandshake(decodeJson<HandshakePayload>(frame));
      } else if (frame.type === FrameType.HEARTBEAT) {
        heartbeats++;
        if (answerHeartbeats) send(encodeFrame(FrameType.HEARTBEAT, 0));
      } else if (frame.type === FrameType.TERMINATE) {
        terminations.push(decodeJson<TerminatePayload>(frame));
      }
      return;
    }
    if (frame.channel >= WORKER_CHANNEL_BASE) {
      onServiceFrame(frame);
      return;
    }
    const state = channels.get(frame.channel);
    if (!state) return;
    if (frame.type === FrameType.CHUNK) {
      timing.firstResultByteMs ??= performance.now() - startedAt;
      // The decoder hands out views into its buffers: copy so the test may keep them.
      const chunk = Buffer.from(frame.payload);
      state.chunks.push(chunk);
      state.pending.push(chunk);
      const waiter = state.waiter;
      state.waiter = undefined;
      waiter?.();
    } else if (frame.type === FrameType.END) {
      finish(frame.channel, state);
    } else if (frame.type === FrameType.ERROR) {
      finish(frame.channel, state, decodeJson<ErrorPayload>(frame));
    }
  };

  const answerService = async (request: ServiceRequest) => {
    let reply: ServiceReply;
    try {
      reply = options.onService ? await options.onService(request) : { error: { code: 'internal', message: 'this peer serves no services' } };
    } catch (error) {
      reply = { error: { code: 'internal', message: (error as Error).message } };
    }
    if (serviceCancels.has(request.channel)) return;
    if ('error' in reply) {
      send(encodeJson(FrameType.ERROR, request.channel, reply.error));
      return;
    }
    const chunks = reply.json !== undefined ? [JSON.stringify(reply.json)] : (reply.chunks ?? []);
    for (const chunk of chunks) sendChunk(request.channel, chunk);
    send(encodeFrame(FrameType.END, request.channel));
  };

  const onServiceFrame = (frame: Frame) => {
    if (frame.type === FrameType.SERVICE) {
      const { service, parent, args } = decodeJson<{ service: string; parent: number; args?: Record<string, unknown> }>(frame);
      const request: ServiceRequest = { channel: frame.channel, service, parent, args: args ?? {}, body: Buffer.alloc(0) };
      services.push(request);
      opening.set(frame.channel, { request, body: [] });
    } else if (frame.type === FrameType.CHUNK) {
      opening.get(frame.channel)?.body.push(Buffer.from(frame.payload));
    } else if (frame.type === FrameType.END) {
      const open = opening.get(frame.channel);
      if (!open) return;
      opening.delete(frame.channel);
      open.request.body = Buffer.concat(open.body);
      void answerService(open.request);
    } else if (frame.type === FrameType.ERROR) {
      opening.delete(frame.channel);
      serviceCancels.set(frame.channel, decodeJson<ErrorPayload>(frame));
    }
  };

  server.on('connection', (connection: Socket) => {
    if (socket) {
      connection.destroy();
      return;
    }
    socket = connection;
    connection.setNoDelay(true);
    const decoder = new FrameDecoder();
    connection.on('data', (data: Buffer) => decoder.push(data, onFrame));
    connection.on('error', () => {});
    connection.once('close', () => failAll('worker closed the socket'));
    for (const data of queued.splice(0)) connection.write(data);
  });

  const send = (data: Buffer) => {
    if (socket) {
      if (!socket.destroyed) socket.write(data);
    } else {
      queued.push(data);
    }
  };

  const openChannel = (event: string, invokeOptions: InvokeOptions = {}): [number, ChannelState] => {
    const channel = nextChannel++;
    let resolve!: (result: InvokeResult) => void;
    const result = new Promise<InvokeResult>((r) => (resolve = r));
    const state: ChannelState = { chunks: [], pending: [], done: false, resolve, result };
    channels.set(channel, state);
    send(encodeJson(FrameType.INVOKE, channel, { event, headers: invokeOptions.headers ?? {}, deadline: invokeOptions.deadline ?? 0 }));
    return [channel, state];
  };

  const sendChunk = (channel: number, chunk: Buffer | string) => {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (data.length > 64 * 1024) {
      send(encodeHeader(FrameType.CHUNK, channel, data.length));
      send(data);
    } else {
      send(encodeFrame(FrameType.CHUNK, channel, data));
    }
  };

  const peer: Peer = {
    workerId,
    pid: child.pid ?? -1,
    handshake,
    exited,
    stdout,
    stderr,
    terminations,
    get heartbeats() {
      return heartbeats;
    },
    services,
    serviceCancels,
    logs,
    timing,
    invoke(event, body, invokeOptions) {
      const [channel, state] = openChannel(event, invokeOptions);
      const parts = body === undefined ? [] : Array.isArray(body) ? body : [body];
      for (const part of parts) sendChunk(channel, part);
      send(encodeFrame(FrameType.END, channel));
      return state.result;
    },
    invokeStream(event, invokeOptions) {
      const [channel, state] = openChannel(event, invokeOptions);
      const chunks: AsyncIterable<Buffer> = {
        async *[Symbol.asyncIterator]() {
          for (;;) {
            while (state.pending.length > 0) yield state.pending.shift()!;
            if (state.done) {
              if (state.error) throw Object.assign(new Error(`${state.error.code}: ${state.error.message}`), { payload: state.error });
              return;
            }
            await new Promise<void>((resolve) => (state.waiter = resolve));
          }
        },
      };
      return {
        channel,
        write: (chunk) => sendChunk(channel, chunk),
        end: () => send(encodeFrame(FrameType.END, channel)),
        chunks,
        result: state.result,
      };
    },
    cancel(channel, code = 'cancelled') {
      send(encodeJson(FrameType.ERROR, channel, { code, message: code }));
      const state = channels.get(channel);
      if (state) finish(channel, state, { code, message: 'cancelled by the peer' });
    },
    terminate(code = 0, reason = 'test') {
      send(encodeJson(FrameType.TERMINATE, 0, { code, reason }));
    },
    sendRaw(data) {
      send(data);
    },
    pauseReading() {
      socket?.pause();
    },
    resumeReading() {
      socket?.resume();
    },
    closeSocket() {
      socket?.destroy();
      server.close();
    },
    kill() {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) peer.kill();
      await exited;
      socket?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return peer;
}

/** Appends each complete line of a text stream to `into` (the last partial line at its end). */
export function collectLines(stream: NodeJS.ReadableStream, into: string[]): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (data: string) => {
    const parts = (partial + data).split('\n');
    partial = parts.pop()!;
    into.push(...parts);
  });
  stream.on('end', () => {
    if (partial !== '') into.push(partial);
    partial = '';
  });
}
