import {
  credentials,
  type CallOptions,
  type Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ClientWritableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import { once } from 'node:events';
import { CancelledError } from '../errors/index.js';
import type {
  AppInfoMessage,
  BroadcastReplyMessage,
  ChunkMessage,
  CrashlogMessage,
  EngineInfoMessage,
  EnqueueReplyMessage,
  EventStatusMessage,
  LogLineMessage,
  ProfileInfoMessage,
  SessionFrameMessage,
} from './messages.js';
import { cocaineProto } from './proto.js';
import { EnqueueStreamClient, type EnqueueOptions } from './enqueue-client.js';
import { SessionClient } from './session-client.js';
import { errorFromFrame, errorFromStatus } from './status.js';
import type { TraceReplyMessage } from './trace-service.js';

export type { TraceReplyMessage, TraceSpanMessage } from './trace-service.js';
export { SessionClient, type SessionCallOptions } from './session-client.js';
export { EnqueueStreamClient, type EnqueueOptions } from './enqueue-client.js';

export interface ConnectOptions {
  /** Largest message sent or received (default 64 MiB, as the server). */
  maxMessageBytes?: number;
  /** Deadline of each unary (request/reply) rpc in ms; 0 = none (default). */
  timeoutMs?: number;
}

export interface InvokeOptions {
  headers?: Record<string, string>;
  /** Per-request deadline in ms, sent as timeout_ms and as the gRPC deadline (+1 s slack). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Run on the node this key maps to among the live engine nodes (docs/clients.md, "Placement"). */
  routingKey?: string;
}

/** One Broadcast reply: a node's result chunk, its end, or its error (a RemoteError). */
export type BroadcastItem = { node: string; chunk: Buffer } | { node: string; end: true } | { node: string; error: Error };

/** One node's whole outcome of a broadcast (EngineClient.broadcastCall). */
export interface BroadcastResult {
  node: string;
  data: Buffer;
  error?: Error;
}

export interface UploadAppOptions {
  /** Empty: the manifest's name. */
  name?: string;
  manifest?: Buffer;
  manifestFile?: string;
  profile?: string;
  archive: Buffer;
  /** Called as archive chunks are handed to the transport. */
  onProgress?(sentBytes: number, totalBytes: number): void;
}

type Body = Buffer | string | Uint8Array;
const UPLOAD_CHUNK = 1024 * 1024;

function toBuffer(data: Body | undefined): Buffer {
  if (data === undefined) return Buffer.alloc(0);
  if (Buffer.isBuffer(data)) return data;
  return typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as ServiceError).code === 'number' && 'metadata' in error;
}

function mapError(error: unknown): unknown {
  return isServiceError(error) ? errorFromStatus(error) : error;
}

/** Reads a server stream, mapping statuses to EngineErrors; leaving the loop early cancels the call. */
async function* readStream<M, T>(call: ClientReadableStream<M> | ClientDuplexStream<unknown, M>, pick: (message: M) => T, signal?: AbortSignal): AsyncGenerator<T> {
  let done = false;
  const onAbort = () => call.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const message of call as AsyncIterable<M>) yield pick(message);
    done = true;
  } catch (error) {
    if (signal?.aborted) throw new CancelledError();
    throw mapError(error);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!done) call.cancel();
  }
}

/** A typed client of the Engine and Deploy services (used by cocaine-deploy, tests and benchmarks). */
export class EngineClient {
  readonly engine: Client & Record<string, any>;
  readonly deploy: Client & Record<string, any>;
  private readonly timeoutMs: number;

  constructor(
    readonly address: string,
    options: ConnectOptions = {},
  ) {
    const proto = cocaineProto();
    const max = options.maxMessageBytes ?? 64 * 1024 * 1024;
    const channelOptions = { 'grpc.max_receive_message_length': max, 'grpc.max_send_message_length': max };
    this.engine = new proto.Engine(address, credentials.createInsecure(), channelOptions) as Client & Record<string, any>;
    // Same channel for both services: one connection.
    this.deploy = new proto.Deploy(address, credentials.createInsecure(), { ...channelOptions, channelOverride: this.engine.getChannel() }) as Client & Record<string, any>;
    this.timeoutMs = options.timeoutMs ?? 0;
  }

  /** Resolves once connected; rejects with UNAVAILABLE-style error after `timeoutMs`. */
  waitForReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.engine.waitForReady(Date.now() + timeoutMs, (error?: Error) =>
        error ? reject(errorFromStatus({ code: 14, details: `cannot reach the engine at ${this.address}: ${error.message}` })) : resolve(),
      ),
    );
  }

  close(): void {
    this.engine.close();
    this.deploy.close();
  }

  private callOptions(timeoutMs?: number): CallOptions {
    const ms = timeoutMs ?? this.timeoutMs;
    return ms > 0 ? { deadline: Date.now() + ms } : {};
  }

  private unary<T>(client: Client & Record<string, any>, method: string, request: object, timeoutMs?: number): Promise<T> {
    return new Promise((resolve, reject) =>
      client[method](request, this.callOptions(timeoutMs), (error: ServiceError | null, reply: T) => (error ? reject(errorFromStatus(error)) : resolve(reply))),
    );
  }

  // ------------------------------------------------------------ invocation

  invoke(target: string, data?: Body, options: InvokeOptions = {}): AsyncIterable<Buffer> {
    const timeoutMs = options.timeoutMs ?? 0;
    const call: ClientReadableStream<ChunkMessage> = this.engine.Invoke(
      { target, data: toBuffer(data), headers: options.headers ?? {}, timeoutMs, routingKey: options.routingKey ?? '' },
      timeoutMs > 0 ? { deadline: Date.now() + timeoutMs + 1000 } : {},
    );
    return readStream(call, (chunk) => chunk.data, options.signal);
  }

  /** The call on every live engine node; replies labelled by node (a node's error is an item, not a throw). */
  broadcast(target: string, data?: Body, options: Omit<InvokeOptions, 'routingKey'> = {}): AsyncIterable<BroadcastItem> {
    const timeoutMs = options.timeoutMs ?? 0;
    const call: ClientReadableStream<BroadcastReplyMessage> = this.engine.Broadcast(
      { target, data: toBuffer(data), headers: options.headers ?? {}, timeoutMs },
      timeoutMs > 0 ? { deadline: Date.now() + timeoutMs + 1000 } : {},
    );
    return readStream(call, (reply): BroadcastItem => {
      if (reply.error) return { node: reply.node, error: errorFromFrame(reply.error) };
      if (reply.end) return { node: reply.node, end: true };
      return { node: reply.node, chunk: reply.data ?? Buffer.alloc(0) };
    }, options.signal);
  }

  /** A broadcast collected: each node's whole result or error, in the order nodes settled. */
  async broadcastCall(target: string, data?: Body, options: Omit<InvokeOptions, 'routingKey'> = {}): Promise<BroadcastResult[]> {
    const chunks = new Map<string, Buffer[]>();
    const results: BroadcastResult[] = [];
    for await (const item of this.broadcast(target, data, options)) {
      const own = chunks.get(item.node) ?? [];
      chunks.set(item.node, own);
      if ('chunk' in item) own.push(item.chunk);
      else results.push({ node: item.node, data: Buffer.concat(own), ...('error' in item ? { error: item.error } : {}) });
    }
    return results;
  }

  /** Collects a whole result. */
  async call(target: string, data?: Body, options: InvokeOptions = {}): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.invoke(target, data, options)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  /** The request body streams from `body` (with backpressure); result chunks stream back. */
  invokeStream(target: string, body: AsyncIterable<Body> | Iterable<Body>, options: InvokeOptions = {}): AsyncIterable<Buffer> {
    const timeoutMs = options.timeoutMs ?? 0;
    const call: ClientDuplexStream<object, ChunkMessage> = this.engine.InvokeStream(timeoutMs > 0 ? { deadline: Date.now() + timeoutMs + 1000 } : {});
    call.write({ header: { target, headers: options.headers ?? {}, timeoutMs, routingKey: options.routingKey ?? '' } });
    void (async () => {
      try {
        for await (const part of body) {
          const data = toBuffer(part);
          if (data.length === 0) continue;
          if (!call.write({ data })) await once(call, 'drain');
        }
        call.end();
      } catch (error) {
        call.cancel();
      }
    })();
    return readStream(call, (chunk) => chunk.data, options.signal);
  }

  /** A multiplexed session: many calls over one bidi stream. */
  session(): SessionClient {
    const stream: ClientDuplexStream<SessionFrameMessage, SessionFrameMessage> = this.engine.Session();
    return new SessionClient(stream);
  }

  // ------------------------------------------------------------ fire-and-forget

  enqueue(target: string, data?: Body, options: EnqueueOptions = {}): Promise<EnqueueReplyMessage> {
    return this.unary(this.engine, 'Enqueue', {
      target,
      data: toBuffer(data),
      headers: options.headers ?? {},
      maxAttempts: options.maxAttempts ?? 0,
      delayMs: options.delayMs ?? 0,
      id: options.id ?? '',
    });
  }

  /** Many enqueues over one stream (high-throughput producers). */
  enqueueStream(): EnqueueStreamClient {
    return new EnqueueStreamClient(this.engine.EnqueueStream());
  }

  status(id: string): Promise<EventStatusMessage> {
    return this.unary(this.engine, 'Status', { id });
  }

  async deadLetters(app?: string): Promise<EventStatusMessage[]> {
    return (await this.unary<{ events: EventStatusMessage[] }>(this.deploy, 'ListDeadLetters', { name: app ?? '' })).events;
  }

  redrive(id: string): Promise<EventStatusMessage> {
    return this.unary(this.deploy, 'Redrive', { id });
  }

  // ------------------------------------------------------------ apps

  uploadApp(options: UploadAppOptions): Promise<AppInfoMessage> {
    const { archive } = options;
    return new Promise((resolve, reject) => {
      const call: ClientWritableStream<object> = this.deploy.UploadApp(this.callOptions(), (error: ServiceError | null, reply: AppInfoMessage) =>
        error ? reject(errorFromStatus(error)) : resolve(reply),
      );
      call.write({
        header: {
          name: options.name ?? '',
          manifest: options.manifest ?? Buffer.alloc(0),
          manifestFile: options.manifestFile ?? '',
          profile: options.profile ?? '',
          size: archive.length,
        },
      });
      void (async () => {
        for (let offset = 0; offset < archive.length; offset += UPLOAD_CHUNK) {
          const chunk = archive.subarray(offset, offset + UPLOAD_CHUNK);
          const flowing = call.write({ archive: chunk });
          options.onProgress?.(offset + chunk.length, archive.length);
          if (!flowing) await once(call, 'drain');
        }
        call.end();
      })().catch(() => call.cancel());
    });
  }

  async listApps(): Promise<AppInfoMessage[]> {
    return (await this.unary<{ apps: AppInfoMessage[] }>(this.deploy, 'ListApps', {})).apps;
  }
  viewApp(name: string): Promise<AppInfoMessage> {
    return this.unary(this.deploy, 'ViewApp', { name });
  }
  async removeApp(name: string): Promise<void> {
    await this.unary(this.deploy, 'RemoveApp', { name });
  }
  startApp(name: string, profile?: string): Promise<AppInfoMessage> {
    return this.unary(this.deploy, 'StartApp', { name, profile: profile ?? '' });
  }
  stopApp(name: string): Promise<AppInfoMessage> {
    return this.unary(this.deploy, 'StopApp', { name });
  }
  restartApp(name: string, profile?: string): Promise<AppInfoMessage> {
    return this.unary(this.deploy, 'RestartApp', { name, profile: profile ?? '' });
  }
  appLogs(name: string, options: { lines?: number; follow?: boolean; signal?: AbortSignal } = {}): AsyncIterable<LogLineMessage> {
    const call: ClientReadableStream<LogLineMessage> = this.deploy.AppLogs({ name, lines: options.lines ?? 0, follow: options.follow ?? false });
    return readStream(call, (line) => line, options.signal);
  }

  // ------------------------------------------------------------ profiles, runlist, crashlogs, info

  uploadProfile(name: string, content: Body, file?: string): Promise<ProfileInfoMessage> {
    return this.unary(this.deploy, 'UploadProfile', { name, content: toBuffer(content), file: file ?? '' });
  }
  async listProfiles(): Promise<string[]> {
    return (await this.unary<{ names: string[] }>(this.deploy, 'ListProfiles', {})).names;
  }
  viewProfile(name: string): Promise<ProfileInfoMessage> {
    return this.unary(this.deploy, 'ViewProfile', { name });
  }
  async removeProfile(name: string): Promise<void> {
    await this.unary(this.deploy, 'RemoveProfile', { name });
  }
  async viewRunlist(): Promise<Record<string, string>> {
    return (await this.unary<{ apps: Record<string, string> }>(this.deploy, 'ViewRunlist', {})).apps;
  }
  async addToRunlist(app: string, profile: string): Promise<Record<string, string>> {
    return (await this.unary<{ apps: Record<string, string> }>(this.deploy, 'AddToRunlist', { app, profile })).apps;
  }
  async removeFromRunlist(app: string): Promise<Record<string, string>> {
    return (await this.unary<{ apps: Record<string, string> }>(this.deploy, 'RemoveFromRunlist', { name: app })).apps;
  }
  async listCrashlogs(app: string): Promise<CrashlogMessage[]> {
    return (await this.unary<{ crashlogs: CrashlogMessage[] }>(this.deploy, 'ListCrashlogs', { name: app })).crashlogs;
  }
  viewCrashlog(app: string, id: string): Promise<CrashlogMessage> {
    return this.unary(this.deploy, 'ViewCrashlog', { app, id });
  }
  async removeCrashlogs(app: string): Promise<void> {
    await this.unary(this.deploy, 'RemoveCrashlogs', { name: app });
  }
  info(options: { cluster?: boolean } = {}): Promise<EngineInfoMessage> {
    return this.unary(this.deploy, 'Info', { cluster: options.cluster ?? false });
  }
  /** One trace's spans (an id or a whole traceparent); NOT_FOUND when unknown or expired. */
  trace(traceId: string): Promise<TraceReplyMessage> {
    return this.unary(this.deploy, 'Trace', { traceId });
  }
}

export function connect(address: string, options?: ConnectOptions): EngineClient {
  return new EngineClient(address, options);
}
