import type { Manifest, Profile } from '../../manifests/types.js';
import type { AppRecord, ArchiveFile, CrashlogEntry, CrashlogSummary, Runlist } from '../storage/types.js';
import type { EnqueueResult, EventStatus } from '../queue/types.js';
import type { EngineTraces } from '../trace/engine-traces.js';
import type { EngineError } from '../errors/index.js';

/**
 * What the transport layers (gRPC in engine/api/grpc, NATS request-reply) call. The engine core
 * implements it; transports only translate messages and map EngineError codes to their statuses.
 */

export interface InvocationRequest {
  app: string;
  event: string;
  headers: Record<string, string>;
  /** Absolute deadline, epoch ms (0 = the profile's / manifest's). */
  deadline: number;
}

/**
 * One blocking invocation. The request body is written with `write`/`end` (a unary call writes
 * its data and ends at once). The result is read with `for await (const chunk of invocation)`,
 * which throws an EngineError on failure. `cancel` abandons it (the worker is told).
 */
export interface Invocation extends AsyncIterable<Buffer> {
  write(chunk: Buffer): void;
  end(): void;
  cancel(reason?: string): void;
  /**
   * Callback-style consumption for hot paths (the multiplexed session): instead of iterating,
   * register listeners; exactly one of onEnd/onError is called, after all chunks.
   */
  listen(listeners: {
    onChunk(chunk: Buffer): void;
    onEnd(): void;
    onError(error: Error): void;
  }): void;
}

export interface UploadAppInput {
  /** Empty: the manifest's name. */
  name: string;
  /** Manifest text (YAML/JSON); undefined: read manifest.{yaml,yml,json} from the archive. */
  manifest?: Buffer;
  manifestFile?: string;
  /** Profile to run with; default "default". */
  profile?: string;
  /** The archive as spooled to a local file by the transport (removed by it after the call). */
  archive: ArchiveFile;
}

export type AppState = 'stopped' | 'running' | 'broken';

export interface AppView {
  record: AppRecord;
  state: AppState;
  profile: string;
  inRunlist: boolean;
  error?: string;
}

export interface LogLine {
  timestamp: number;
  workerId: string;
  /** `log`: a structured record a handler logged (the line is its JSON, engine/services/log.ts). */
  stream: 'stdout' | 'stderr' | 'engine' | 'log';
  line: string;
}

export interface AppCounters {
  accepted: number;
  completed: number;
  failed: number;
  rejected: number;
  timeouts: number;
  crashes: number;
  spawned: number;
}

export interface AppRuntimeInfo {
  name: string;
  state: AppState;
  profile: string;
  poolSize: number;
  busy: number;
  idle: number;
  pending: number;
  sessions: number;
  queuedEvents: number;
  counters: AppCounters;
  error?: string;
}

export interface PluginInfo {
  name: string;
  version: string;
  apiVersion: number;
  source: string;
}

export interface NodeInfo {
  nodeId: string;
  version: string;
  uptimeMs: number;
  listen: string;
  storage: string;
  queue: string;
  isolate: string;
  apps: AppRuntimeInfo[];
  plugins: PluginInfo[];
  seenAt: number;
}

/** Where an invocation runs across engine nodes (docs/clients.md, "Placement"). */
export interface PlacementOptions {
  /** Runs on the node this key maps to among the live nodes (rendezvous hashing). */
  routingKey?: string;
  /** Runs on every live node; the result is a JSON array of each node's outcome (Placement.invoke). */
  broadcast?: boolean;
}

/** One message of a broadcast's answer: a node's result chunk, its end, or its error. */
export type BroadcastReply = { node: string; chunk: Buffer } | { node: string; end: true } | { node: string; error: EngineError };

export interface Broadcast extends AsyncIterable<BroadcastReply> {
  /** The nodes it was sent to (the live nodes when it started). */
  readonly nodes: readonly string[];
  cancel(reason?: string): void;
}

/**
 * Placement across engine nodes (engine/api/placement.ts; with --nats, engine/nats/placement.ts).
 * Routed and broadcast invocations carry the request header `cocaine-node`: the node running them.
 */
export interface Placement {
  readonly nodeId: string;
  /** Live node ids, sorted (this node alone without NATS). */
  nodes(): string[];
  /** The node a routing key maps to now. */
  nodeForKey(routingKey: string): string;
  /**
   * A routed invocation (routingKey), a broadcast (broadcast: true; its one result is the JSON
   * array of BroadcastOutcome) or, with neither, a local one.
   */
  invoke(request: InvocationRequest, options: PlacementOptions): Invocation;
  /** The request on every live node in parallel; replies labelled by node. */
  broadcast(request: InvocationRequest, body: Buffer): Broadcast;
}

/** One node's outcome in the JSON result of `Placement.invoke(request, { broadcast: true })`. */
export type BroadcastOutcome = { node: string; ok: true; data: string } | { node: string; ok: false; code: string; status: number; message: string };

/** A fire-and-forget event as the transports and handler services hand it to the engine. */
export interface EnqueueInput {
  app: string;
  event: string;
  data: Buffer;
  headers: Record<string, string>;
  maxAttempts?: number;
  delayMs?: number;
  id?: string;
}

export interface EngineFacade {
  /** This node's id (node ids label broadcast replies). */
  readonly nodeId?: string;
  /** Set once the node knows its peers (--nats); absent: a single-node placement over `invoke`. */
  placement?: Placement;

  /** This node's tracing (docs/tracing.md); transports record their requests' spans with it. Absent: no tracing. */
  readonly traces?: EngineTraces;

  invoke(request: InvocationRequest): Invocation;

  enqueue(input: EnqueueInput): Promise<EnqueueResult>;
  status(id: string): Promise<EventStatus>;
  deadLetters(app?: string): Promise<EventStatus[]>;
  redrive(id: string): Promise<EventStatus>;

  uploadApp(input: UploadAppInput): Promise<AppView>;
  listApps(): Promise<AppView[]>;
  viewApp(name: string): Promise<AppView>;
  removeApp(name: string): Promise<void>;
  startApp(name: string, profile?: string): Promise<AppView>;
  stopApp(name: string): Promise<AppView>;
  restartApp(name: string, profile?: string): Promise<AppView>;
  appLogs(name: string, options: { lines: number; follow: boolean; signal: AbortSignal }): AsyncIterable<LogLine>;

  uploadProfile(name: string, content: Buffer, file?: string): Promise<{ name: string; profile: Profile }>;
  listProfiles(): Promise<string[]>;
  viewProfile(name: string): Promise<{ name: string; profile: Profile }>;
  removeProfile(name: string): Promise<void>;

  viewRunlist(): Promise<Runlist>;
  addToRunlist(app: string, profile: string): Promise<Runlist>;
  removeFromRunlist(app: string): Promise<Runlist>;

  listCrashlogs(app: string): Promise<CrashlogSummary[]>;
  viewCrashlog(app: string, id: string): Promise<CrashlogEntry>;
  removeCrashlogs(app: string): Promise<void>;

  info(options: { cluster: boolean }): Promise<{ node: NodeInfo; cluster: NodeInfo[] }>;
}

export type { Manifest };
