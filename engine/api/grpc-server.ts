import { Server, ServerCredentials, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath, type ServingStatus } from 'grpc-health-check';
import { InvalidInputError } from '../errors/index.js';
import { setLongTimeout } from '../util/timers.js';
import { deployService, openUploadSpool, type LogFollowers } from './deploy-service.js';
import { engineService } from './engine-service.js';
import { acceptLongDeadlines } from './long-deadlines.js';
import type { EngineFacade } from './facade.js';
import { cocaineProto, DEPLOY_SERVICE, ENGINE_SERVICE, HEALTH_SERVICE, PROTO_LOADER_OPTIONS } from './proto.js';
import { DEPLOY_REQUEST_CHECKS } from './request-fields.js';
import type { SessionRegistry } from './session.js';
import { statusFromError } from './status.js';
import { traceService } from './trace-service.js';

export interface GrpcServerOptions {
  /** host:port; port 0 picks a free one. */
  listen: string;
  /** Largest gRPC message sent or received. */
  maxMessageBytes?: number;
  /** Largest app archive UploadApp accepts. */
  maxArchiveBytes?: number;
  /** Result bytes a slow Invoke reader may leave waiting... */
  maxPendingBytes?: number;
  /** ...while taking nothing for this long, before its call is cancelled (RESOURCE_EXHAUSTED). */
  slowReaderMs?: number;
  /** Where UploadApp spools archives as they arrive (default: a new dir under the OS temp dir). */
  uploadDir?: string;
  /** Bytes all uploads in progress may hold together; past it RESOURCE_EXHAUSTED (default 2 × maxArchiveBytes). */
  maxConcurrentUploadBytes?: number;
  /** An upload silent this long is abandoned, freeing its budget (default 120 s). */
  uploadIdleMs?: number;
}

export interface ResolvedGrpcServerOptions {
  listen: string;
  maxMessageBytes: number;
  maxArchiveBytes: number;
  maxPendingBytes: number;
  slowReaderMs: number;
}

export const DEFAULT_GRPC_SERVER_OPTIONS: Readonly<Omit<ResolvedGrpcServerOptions, 'listen'>> = Object.freeze({
  maxMessageBytes: 64 * 1024 * 1024,
  maxArchiveBytes: 512 * 1024 * 1024,
  maxPendingBytes: 64 * 1024 * 1024,
  slowReaderMs: 30_000,
});

export interface GrpcServerHandle {
  port: number;
  /** host:port actually bound. */
  address: string;
  /** Health NOT_SERVING, sessions drain, no new calls; forces the rest after `graceMs`. */
  shutdown(graceMs: number): Promise<void>;
  forceShutdown(): void;
}

export function resolveGrpcServerOptions(options: GrpcServerOptions): ResolvedGrpcServerOptions {
  const resolved = { ...DEFAULT_GRPC_SERVER_OPTIONS, ...stripUndefined(options) } as ResolvedGrpcServerOptions;
  if (typeof resolved.listen !== 'string' || !/^(\[[^\]]+\]|[^:[\]]+):\d{1,5}$/.test(resolved.listen)) {
    throw new InvalidInputError('invalid_argument', `listen: expected HOST:PORT, got ${JSON.stringify(resolved.listen)}`, { field: 'listen' });
  }
  if (!Number.isSafeInteger(resolved.slowReaderMs) || resolved.slowReaderMs < 0) {
    throw new InvalidInputError('invalid_argument', `slowReaderMs: expected an integer number of ms >= 0, got ${JSON.stringify(resolved.slowReaderMs)}`, { field: 'slowReaderMs' });
  }
  for (const field of ['maxMessageBytes', 'maxArchiveBytes', 'maxPendingBytes'] as const) {
    const value = resolved[field];
    if (!Number.isSafeInteger(value) || value < 1024) {
      throw new InvalidInputError('invalid_argument', `${field}: expected an integer number of bytes >= 1024, got ${JSON.stringify(value)}`, { field });
    }
  }
  return resolved;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Names the health service reports on ("" is the whole server); docs/clients.md lists them. */
export const HEALTH_SERVICES: readonly string[] = Object.freeze(['', ENGINE_SERVICE, DEPLOY_SERVICE]);

/**
 * Runs `checks[method]` on each unary or server-streaming request before its handler, so bad
 * fields are refused (INVALID_ARGUMENT) in one place (request-fields.ts) whatever the handler.
 */
function withRequestChecks(service: UntypedServiceImplementation, checks: Readonly<Record<string, (request: Record<string, any>) => void>>): UntypedServiceImplementation {
  const checked: UntypedServiceImplementation = { ...service };
  for (const [method, check] of Object.entries(checks)) {
    const handler = service[method] as ((call: any, callback?: any) => void) | undefined;
    if (!handler) continue;
    checked[method] = (call: any, callback?: (error: object) => void) => {
      try {
        check(call.request);
      } catch (error) {
        if (callback) callback(statusFromError(error));
        else call.emit('error', statusFromError(error));
        return;
      }
      handler(call, callback);
    };
  }
  return checked;
}

/** What server reflection describes: the cocaine services and grpc.health.v1.Health. */
function reflectedDefinitions() {
  const health = loadSync(healthProtoPath, { ...PROTO_LOADER_OPTIONS });
  if (!health[HEALTH_SERVICE]) throw new Error(`${healthProtoPath} does not define ${HEALTH_SERVICE}`);
  return { ...cocaineProto().packageDefinition, ...health };
}

/** Serves the Engine and Deploy services, health and reflection, over `facade`. */
export async function startGrpcServer(facade: EngineFacade, options: GrpcServerOptions): Promise<GrpcServerHandle> {
  const resolved = resolveGrpcServerOptions(options);
  const proto = cocaineProto();
  const server = new Server({
    'grpc.max_receive_message_length': resolved.maxMessageBytes,
    'grpc.max_send_message_length': resolved.maxMessageBytes,
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.keepalive_permit_without_calls': 1,
    // Clients may ping every 10 s (grpc-js's floor) without being told to go away.
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    'grpc.max_connection_age_grace_ms': 30_000,
  });
  const sessions: SessionRegistry = new Set();
  const followers: LogFollowers = new Set();
  server.addService(proto.engineService, engineService(facade, sessions, { maxPendingBytes: resolved.maxPendingBytes, slowReaderMs: resolved.slowReaderMs }));
  const uploads = await openUploadSpool({ ...options, maxArchiveBytes: resolved.maxArchiveBytes });
  server.addService(
    proto.deployService,
    withRequestChecks(
      { ...deployService(facade, followers, { maxArchiveBytes: resolved.maxArchiveBytes, uploads, uploadIdleMs: options.uploadIdleMs }), ...traceService(facade) },
      DEPLOY_REQUEST_CHECKS,
    ),
  );
  const health = new HealthImplementation(Object.fromEntries(HEALTH_SERVICES.map((name) => [name, 'SERVING' as ServingStatus])));
  health.addToServer(server);
  new ReflectionService(reflectedDefinitions()).addToServer(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(resolved.listen, ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  acceptLongDeadlines(server);
  const host = resolved.listen.slice(0, resolved.listen.lastIndexOf(':'));
  let shuttingDown: Promise<void> | undefined;

  return {
    port,
    address: `${host}:${port}`,
    shutdown(graceMs: number): Promise<void> {
      shuttingDown ??= new Promise<void>((resolve) => {
        for (const name of HEALTH_SERVICES) health.setStatus(name, 'NOT_SERVING');
        for (const session of [...sessions]) session.drain();
        for (const follower of [...followers]) follower.abort();
        const timer = setLongTimeout(() => {
          server.forceShutdown();
          resolve();
        }, Math.max(0, graceMs));
        server.tryShutdown(() => {
          timer.clear();
          resolve();
        });
      });
      return shuttingDown;
    },
    forceShutdown(): void {
      for (const name of HEALTH_SERVICES) health.setStatus(name, 'NOT_SERVING');
      server.forceShutdown();
    },
  };
}
