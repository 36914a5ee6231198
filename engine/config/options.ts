import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { InvalidInputError } from '../errors/index.js';

export interface EngineOptions {
  /** gRPC listen address, host:port. Loopback by default. */
  listen: string;
  /** Data directory for the fs storage, the local queue, spooled apps and the node id. */
  dataDir: string;
  /** `fs` or a NATS url (`nats://host:port`) for the nats storage. */
  storage: string;
  /** `local` (LMDB in dataDir) or `jetstream` (needs a NATS url in `nats` or `storage`). */
  queue: string;
  /** NATS servers for storage/queue/request-reply and cluster presence. */
  nats: string;
  natsPrefix: string;
  /** Replicas of the NATS streams and buckets this engine creates (3 in a 3-server cluster). */
  natsReplicas: number;
  /** Stable id of this node; default: generated once and kept in dataDir. */
  nodeId: string;
  /** Short directory for worker sockets (unix socket paths are limited to 107 bytes). */
  runDir: string;
  pluginDirs: string[];
  pluginPackages: string[];
  dockerSocket: string;
  dockerImage: string;
  /** Graceful shutdown: how long calls in flight may take to finish. */
  drainTimeoutMs: number;
  maxMessageBytes: number;
  /** Bytes all app uploads in progress may hold together (spooled in dataDir/uploads); past it RESOURCE_EXHAUSTED. */
  maxConcurrentUploadBytes: number;
  /** Fire-and-forget defaults. */
  maxAttempts: number;
  retryBaseDelayMs: number;
  /** A queued event whose node went silent this long is redelivered to another node. */
  ackWaitMs: number;
  /** Handler-to-handler calls nest at most this deep (`cocaine-call-depth`); deeper: call_depth_exceeded. */
  maxCallDepth: number;
  logLevel: string;
}

export const DEFAULT_ENGINE_OPTIONS: Readonly<EngineOptions> = Object.freeze({
  listen: '127.0.0.1:10053',
  dataDir: './var',
  storage: 'fs',
  queue: 'local',
  nats: '',
  natsPrefix: 'cocaine',
  natsReplicas: 1,
  nodeId: '',
  runDir: '',
  pluginDirs: [],
  pluginPackages: [],
  dockerSocket: '/var/run/docker.sock',
  dockerImage: '',
  drainTimeoutMs: 10_000,
  maxMessageBytes: 64 * 1024 * 1024,
  maxConcurrentUploadBytes: 1024 * 1024 * 1024,
  maxAttempts: 5,
  retryBaseDelayMs: 200,
  ackWaitMs: 60_000,
  maxCallDepth: 16,
  logLevel: 'info',
});

/** Largest value of a numeric option (durations stay below setTimeout's 2^31-1 ms). */
export const OPTION_MAXIMUM: Partial<Record<keyof EngineOptions, number>> = {
  drainTimeoutMs: 86_400_000,
  retryBaseDelayMs: 3_600_000,
  ackWaitMs: 86_400_000,
  maxCallDepth: 1_000,
};

const ENV: Record<string, keyof EngineOptions> = {
  COCAINE_LISTEN: 'listen',
  COCAINE_DATA: 'dataDir',
  COCAINE_STORAGE: 'storage',
  COCAINE_QUEUE: 'queue',
  COCAINE_NATS: 'nats',
  COCAINE_NATS_PREFIX: 'natsPrefix',
  COCAINE_NATS_REPLICAS: 'natsReplicas',
  COCAINE_NODE_ID: 'nodeId',
  COCAINE_RUN_DIR: 'runDir',
  COCAINE_PLUGIN_DIRS: 'pluginDirs',
  COCAINE_PLUGIN_PACKAGES: 'pluginPackages',
  COCAINE_DOCKER_SOCKET: 'dockerSocket',
  COCAINE_DOCKER_IMAGE: 'dockerImage',
  COCAINE_DRAIN_TIMEOUT_MS: 'drainTimeoutMs',
  COCAINE_MAX_MESSAGE_BYTES: 'maxMessageBytes',
  COCAINE_MAX_CONCURRENT_UPLOAD_BYTES: 'maxConcurrentUploadBytes',
  COCAINE_MAX_ATTEMPTS: 'maxAttempts',
  COCAINE_RETRY_BASE_DELAY_MS: 'retryBaseDelayMs',
  COCAINE_ACK_WAIT_MS: 'ackWaitMs',
  COCAINE_MAX_CALL_DEPTH: 'maxCallDepth',
  COCAINE_LOG_LEVEL: 'logLevel',
};

/** YAML keys in the config file are kebab-case: `data-dir`, `drain-timeout-ms`... */
function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/**
 * Defaults < config file (YAML) < environment (COCAINE_*) < command-line flags.
 * Errors name the source and the field.
 */
export function resolveEngineOptions(input: {
  configFile?: string;
  env?: NodeJS.ProcessEnv;
  flags?: Partial<Record<keyof EngineOptions, unknown>>;
}): EngineOptions {
  const options: Record<string, unknown> = { ...DEFAULT_ENGINE_OPTIONS };
  if (input.configFile) {
    let parsed: unknown;
    try {
      parsed = parseYaml(readFileSync(input.configFile, 'utf8'));
    } catch (error) {
      throw new InvalidInputError('invalid_argument', `config file ${input.configFile}: ${(error as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new InvalidInputError('invalid_argument', `config file ${input.configFile}: expected a mapping of options`);
      }
      const known = new Map(Object.keys(DEFAULT_ENGINE_OPTIONS).map((key) => [kebab(key), key]));
      for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
        const field = known.get(key) ?? (Object.hasOwn(DEFAULT_ENGINE_OPTIONS, key) ? key : undefined);
        if (!field) {
          throw new InvalidInputError('invalid_argument', `config file ${input.configFile}: unknown option "${key}" (known: ${[...known.keys()].join(', ')})`, { field: key });
        }
        options[field] = coerce(field as keyof EngineOptions, value, `config file ${input.configFile}: option "${key}"`);
      }
    }
  }
  for (const [variable, field] of Object.entries(ENV)) {
    const value = input.env?.[variable];
    if (value !== undefined && value !== '') options[field] = coerce(field, value, `environment variable ${variable}`);
  }
  for (const [field, value] of Object.entries(input.flags ?? {})) {
    if (value !== undefined) options[field] = coerce(field as keyof EngineOptions, value, `option --${kebab(field)}`);
  }
  const resolved = options as unknown as EngineOptions;
  if (!/^[^:]+:\d+$/.test(resolved.listen) && !/^\[[^\]]+\]:\d+$/.test(resolved.listen)) {
    throw new InvalidInputError('invalid_argument', `listen address "${resolved.listen}" must be HOST:PORT`, { field: 'listen' });
  }
  if (resolved.storage !== 'fs' && !resolved.storage.startsWith('nats://')) {
    throw new InvalidInputError('invalid_argument', `storage "${resolved.storage}" must be "fs" or a nats:// url`, { field: 'storage' });
  }
  if (resolved.storage.startsWith('nats://') && !resolved.nats) resolved.nats = resolved.storage;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(resolved.natsPrefix)) {
    throw new InvalidInputError('invalid_argument', `nats prefix "${resolved.natsPrefix}" must be 1-64 letters, digits, "_" or "-" (it names NATS streams and buckets)`, { field: 'natsPrefix' });
  }
  if (resolved.queue !== 'local' && resolved.queue !== 'jetstream') {
    throw new InvalidInputError('invalid_argument', `queue "${resolved.queue}" must be "local" or "jetstream"`, { field: 'queue' });
  }
  if (resolved.queue === 'jetstream' && !resolved.nats) {
    throw new InvalidInputError('invalid_argument', 'queue "jetstream" needs a NATS url (--nats or a nats:// storage)', { field: 'nats' });
  }
  return Object.freeze(resolved);
}

function coerce(field: keyof EngineOptions, value: unknown, source: string): unknown {
  const expected = DEFAULT_ENGINE_OPTIONS[field];
  if (Array.isArray(expected)) {
    if (Array.isArray(value)) return value.map(String);
    if (typeof value === 'string') return value.split(',').map((item) => item.trim()).filter(Boolean);
    throw new InvalidInputError('invalid_argument', `${source} must be a list`, { field });
  }
  if (typeof expected === 'number') {
    const number = typeof value === 'number' ? value : Number(value);
    if (!Number.isFinite(number) || number < 0) {
      throw new InvalidInputError('invalid_argument', `${source} must be a non-negative number (got ${JSON.stringify(value)})`, { field });
    }
    const maximum = OPTION_MAXIMUM[field];
    if (maximum !== undefined && number > maximum) {
      throw new InvalidInputError('invalid_argument', `${source} must be at most ${maximum} (got ${JSON.stringify(value)})`, { field });
    }
    return number;
  }
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw new InvalidInputError('invalid_argument', `${source} must be a string`, { field });
  }
  return String(value);
}
