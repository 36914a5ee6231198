import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EngineError } from '../errors/index.js';

export interface ConnectNatsOptions {
  /** Connection name shown by the server (`nats server report connections`). */
  name?: string;
  /** How long to keep trying the first connection (a server starting beside us) before failing. */
  firstConnectTimeoutMs?: number;
}

const DEFAULTS = Object.freeze({ firstConnectTimeoutMs: 10_000, reconnectTimeWait: 250, dialTimeout: 2_000 });

export function parseNatsServers(servers: string | string[]): string[] {
  const list = (Array.isArray(servers) ? servers : servers.split(','))
    .map((server) => server.trim())
    .filter(Boolean);
  if (list.length === 0) throw new EngineError('storage_error', 'NATS servers: expected at least one url, got none');
  return list;
}

/**
 * One connection per backend, reconnecting forever once connected (a NATS server restart or a
 * cluster failover must not end the engine). The first connection is retried until
 * `firstConnectTimeoutMs`: the client's own `waitOnFirstConnect` never gives up, and an engine
 * pointed at a wrong url must say so.
 */
export async function connectNats(servers: string | string[], options: ConnectNatsOptions = {}): Promise<NatsConnection> {
  const list = parseNatsServers(servers);
  const budget = options.firstConnectTimeoutMs ?? DEFAULTS.firstConnectTimeoutMs;
  const started = Date.now();
  for (;;) {
    try {
      return await connect({
        servers: list,
        name: options.name,
        maxReconnectAttempts: -1,
        reconnectTimeWait: DEFAULTS.reconnectTimeWait,
        reconnectJitter: 100,
        timeout: DEFAULTS.dialTimeout,
        // Async traces build two Error objects (stack captured) per request: a third of the engine's
        // CPU at queue load. Our errors say what failed through withRetry's context instead.
        noAsyncTraces: true,
      });
    } catch (error) {
      if (Date.now() - started + DEFAULTS.reconnectTimeWait > budget) {
        const message = (error as Error)?.message ?? String(error);
        throw new EngineError('storage_error', `cannot connect to NATS at ${list.join(', ')} (tried for ${Date.now() - started} ms): ${message}`, { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, DEFAULTS.reconnectTimeWait));
    }
  }
}
