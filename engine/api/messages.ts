/**
 * Plain shapes of proto/cocaine/v1/engine.proto messages as @grpc/proto-loader hands them over with
 * the options in proto.ts: camelCase fields, 64-bit integers as numbers, bytes as Buffer, enums as
 * strings, defaults filled in (absent sub-messages are null), and the oneof's name in `part`.
 */

export interface InvokeRequestMessage {
  target: string;
  data: Buffer;
  headers: Record<string, string>;
  timeoutMs: number;
  /** Empty: none (docs/clients.md, "Placement"). */
  routingKey?: string;
}

export interface InvokeHeaderMessage {
  target: string;
  headers: Record<string, string>;
  timeoutMs: number;
  routingKey?: string;
}

export interface InvokeStreamRequestMessage {
  header?: InvokeHeaderMessage | null;
  data?: Buffer;
  part?: 'header' | 'data';
}

export interface ChunkMessage {
  data: Buffer;
}

/** One Broadcast reply: `data`, `end` or `error`, from `node`. */
export interface BroadcastReplyMessage {
  node: string;
  data?: Buffer;
  end?: boolean;
  error?: ErrorMessage | null;
}

export interface ErrorMessage {
  status: number;
  code: string;
  message: string;
}

export interface SessionFrameMessage {
  id: number;
  invoke?: InvokeHeaderMessage | null;
  data?: Buffer;
  end?: boolean;
  error?: ErrorMessage | null;
  /** Server → client, on a call's last frame (`end` or `error`): the engine's span of the call (docs/tracing.md). */
  traceparent?: string;
}

export interface EnqueueRequestMessage {
  target: string;
  data: Buffer;
  headers: Record<string, string>;
  maxAttempts: number;
  delayMs: number;
  id: string;
}

export interface EnqueueReplyMessage {
  id: string;
  duplicate: boolean;
}

export interface EnqueueStreamRequestMessage {
  seq: number;
  event?: EnqueueRequestMessage | null;
}

export interface EnqueueStreamReplyMessage {
  seq: number;
  id?: string;
  duplicate?: boolean;
  error?: ErrorMessage | null;
  /** The engine's span of this enqueue (docs/tracing.md). */
  traceparent?: string;
}

export interface StatusRequestMessage {
  id: string;
}

export type EventStateName = 'EVENT_STATE_UNSPECIFIED' | 'PENDING' | 'PROCESSING' | 'COMPLETED' | 'FAILED';

export interface EventStatusMessage {
  id: string;
  target: string;
  state: EventStateName;
  attempts: number;
  maxAttempts: number;
  lastError: string;
  result: Buffer;
  resultTruncated: boolean;
  createdAtMs: number;
  updatedAtMs: number;
  /** The event's trace ("" when it has none). */
  traceId: string;
}

export interface EventListMessage {
  events: EventStatusMessage[];
}

export type EmptyMessage = Record<string, never>;

export interface AppRefMessage {
  name: string;
}

export interface NameListMessage {
  names: string[];
}

export interface UploadAppHeaderMessage {
  name: string;
  manifest: Buffer;
  manifestFile: string;
  profile: string;
  size: number;
}

export interface UploadAppRequestMessage {
  header?: UploadAppHeaderMessage | null;
  archive?: Buffer;
  part?: 'header' | 'archive';
}

export interface AppInfoMessage {
  name: string;
  plugin: string;
  entrypoint: string;
  manifestJson: string;
  sha256: string;
  size: number;
  uploadedAtMs: number;
  state: string;
  profile: string;
  inRunlist: boolean;
  error: string;
}

export interface AppListMessage {
  apps: AppInfoMessage[];
}

export interface StartAppRequestMessage {
  name: string;
  profile: string;
}

export interface AppLogsRequestMessage {
  name: string;
  lines: number;
  follow: boolean;
}

export interface LogLineMessage {
  timestampMs: number;
  workerId: string;
  stream: string;
  line: string;
}

export interface ProfileUploadMessage {
  name: string;
  content: Buffer;
  file: string;
}

export interface ProfileInfoMessage {
  name: string;
  profileJson: string;
}

export interface RunlistMessage {
  apps: Record<string, string>;
}

export interface RunlistEntryMessage {
  app: string;
  profile: string;
}

export interface CrashlogRefMessage {
  app: string;
  id: string;
}

export interface CrashlogMessage {
  id: string;
  app: string;
  workerId: string;
  timestampMs: number;
  reason: string;
  lines: string[];
}

export interface CrashlogListMessage {
  crashlogs: CrashlogMessage[];
}

export interface InfoRequestMessage {
  cluster: boolean;
}

export interface CountersMessage {
  accepted: number;
  completed: number;
  failed: number;
  rejected: number;
  timeouts: number;
  crashes: number;
  spawned: number;
}

export interface AppRuntimeInfoMessage {
  name: string;
  state: string;
  profile: string;
  poolSize: number;
  busy: number;
  idle: number;
  pending: number;
  sessions: number;
  queuedEvents: number;
  counters: CountersMessage | null;
  error: string;
}

export interface PluginInfoMessage {
  name: string;
  version: string;
  apiVersion: number;
  source: string;
}

export interface NodeInfoMessage {
  nodeId: string;
  version: string;
  uptimeMs: number;
  listen: string;
  storage: string;
  queue: string;
  isolate: string;
  apps: AppRuntimeInfoMessage[];
  plugins: PluginInfoMessage[];
  seenAtMs: number;
}

export interface EngineInfoMessage {
  node: NodeInfoMessage | null;
  cluster: NodeInfoMessage[];
}
