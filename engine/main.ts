#!/usr/bin/env node
import { join, resolve } from 'node:path';
import { format } from 'node:util';
import { setLogger as setGrpcLogger } from '@grpc/grpc-js';
import { Command, Option } from 'commander';
import type { Logger } from 'pino';
import { resolveEngineOptions, type EngineOptions } from './config/options.js';
import { Engine } from './engine.js';
import { startGrpcServer } from './api/grpc-server.js';
import { createLogger } from './log.js';
import { packageVersion } from './util/paths.js';

const program = new Command()
  .name('cocaine-engine')
  .description('Runs apps deployed with cocaine-deploy: app@event over gRPC, blocking or fire-and-forget.')
  .version(packageVersion())
  .option('-l, --listen <host:port>', 'gRPC listen address (default 127.0.0.1:10053, env COCAINE_LISTEN)')
  .option('-d, --data <dir>', 'data directory (default ./var, env COCAINE_DATA)')
  .option('-c, --config <file>', 'YAML config file (env COCAINE_CONFIG)')
  .option('--storage <fs|nats://host:port>', 'storage backend (default fs)')
  .option('--queue <local|jetstream>', 'fire-and-forget queue backend (default local)')
  .option('--nats <url>', 'NATS servers (comma-separated) for the jetstream queue, NATS request-reply and cluster info')
  .option('--nats-prefix <prefix>', 'prefix of the NATS streams, buckets and subjects (default cocaine)')
  .option('--nats-replicas <n>', 'replicas of the NATS streams and buckets the engine creates (default 1)')
  .option('--max-call-depth <n>', 'deepest chain of calls between handlers before call_depth_exceeded (default 16)')
  .option('--node-id <id>', 'node id (default: generated once and kept in the data directory)')
  .option('--plugins-dir <dir...>', 'directories with third-party language plugins')
  .option('--plugin-package <name...>', 'npm packages exporting language plugins')
  .option('--docker-socket <path>', 'Docker engine socket for the docker isolate')
  .option('--docker-image <image>', 'default image for the docker isolate')
  .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal']))
  .addHelpText(
    'after',
    '\nEnvironment: COCAINE_LISTEN, COCAINE_DATA, COCAINE_STORAGE, COCAINE_QUEUE, COCAINE_NATS, COCAINE_NATS_PREFIX, COCAINE_NODE_ID,\n' +
      'COCAINE_PLUGIN_DIRS, COCAINE_DOCKER_SOCKET, COCAINE_DRAIN_TIMEOUT_MS, COCAINE_LOG_LEVEL (see docs/configuration.md).',
  )
  .action(run);

async function run(flags: Record<string, unknown>): Promise<void> {
  let options: EngineOptions;
  try {
    options = resolveEngineOptions({
      configFile: (flags.config as string | undefined) ?? process.env.COCAINE_CONFIG,
      env: process.env,
      flags: {
        listen: flags.listen,
        dataDir: flags.data,
        storage: flags.storage,
        queue: flags.queue,
        nats: flags.nats,
        natsPrefix: flags.natsPrefix,
        natsReplicas: flags.natsReplicas,
        maxCallDepth: flags.maxCallDepth,
        nodeId: flags.nodeId,
        pluginDirs: flags.pluginsDir,
        pluginPackages: flags.pluginPackage,
        dockerSocket: flags.dockerSocket,
        dockerImage: flags.dockerImage,
        logLevel: flags.logLevel,
      },
    });
  } catch (error) {
    process.stderr.write(`cocaine-engine: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const logger = createLogger(options.logLevel);
  const grpcLogs = routeGrpcLogs(logger);
  let engine: Engine;
  try {
    engine = await Engine.create(options, logger);
  } catch (error) {
    process.stderr.write(`cocaine-engine: cannot start: ${(error as Error).message}\n`);
    process.exit(1);
  }
  let server: Awaited<ReturnType<typeof startGrpcServer>>;
  try {
    server = await startGrpcServer(engine, {
      listen: options.listen,
      maxMessageBytes: options.maxMessageBytes,
      uploadDir: join(resolve(options.dataDir), 'uploads'),
      maxConcurrentUploadBytes: options.maxConcurrentUploadBytes,
    });
  } catch (error) {
    // grpc-js wraps the socket errors: "No address added out of total 1 resolved errors: [listen EADDRINUSE: ...]".
    const message = (error as Error).message;
    const reason = /errors: \[(.+)\]$/s.exec(message)?.[1] ?? message;
    process.stderr.write(`cocaine-engine: cannot listen on ${options.listen}: ${reason}\n`);
    await engine.shutdown();
    process.exit(1);
  }
  grpcLogs.listening();
  engine.listenAddress = server.address;
  const extras = await startNatsExtras(engine, options).catch((error: unknown) => {
    logger.error({ err: (error as Error).message }, 'NATS services not started');
    return undefined;
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down: draining calls in flight');
    await extras?.close().catch(() => undefined);
    await server.shutdown(options.drainTimeoutMs);
    await engine.shutdown();
    logger.info('engine stopped');
    logger.flush?.();
    setTimeout(() => process.exit(0), 50).unref();
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // Only now, with the signal handlers in place: a SIGTERM sent on this line must shut down cleanly.
  logger.info({ listen: server.address, data: options.dataDir, node: engine.nodeId, storage: options.storage, queue: options.queue }, 'engine ready');
  // One line on stdout that tools (tests, scripts) can wait for.
  process.stdout.write(`cocaine-engine listening on ${server.address} (node ${engine.nodeId})\n`);
}

/**
 * grpc-js logs to the console by default: a port in use printed its own "E No address added..."
 * line before ours, which already carries that text. Its lines go to our log instead: at debug
 * while binding (the bind error is reported by us), its errors at warn once the server listens.
 */
function routeGrpcLogs(logger: Logger): { listening(): void } {
  let errorLevel: 'debug' | 'warn' = 'debug';
  const at = (level: () => 'debug' | 'warn') => (message: unknown, ...params: unknown[]) => logger[level()]({ source: 'grpc-js' }, format(message, ...params));
  setGrpcLogger({ error: at(() => errorLevel), info: at(() => 'debug'), debug: at(() => 'debug') });
  return {
    listening() {
      errorLevel = 'warn';
    },
  };
}

/** NATS request-reply invocation and cluster presence, when a NATS url is configured. */
async function startNatsExtras(engine: Engine, options: EngineOptions): Promise<{ close(): Promise<void> } | undefined> {
  if (!options.nats) return undefined;
  const { startNatsServices } = await import('./nats/services.js');
  return startNatsServices(engine, options);
}

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`cocaine-engine: ${(error as Error).message}\n`);
  process.exit(1);
});
