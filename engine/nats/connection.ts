import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EngineError } from '../errors/index.js';

/** One connection per backend, reconnecting forever (a NATS server restart must not end the engine). */
export async function connectNats(servers: string | string[], options: { name?: string } = {}): Promise<NatsConnection> {
  const list = Array.isArray(servers) ? servers : servers.split(',').map((server) => server.trim()).filter(Boolean);
  try {
    return await connect({
      servers: list,
      name: options.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      waitOnFirstConnect: false,
      timeout: 5_000,
    });
  } catch (error) {
    throw new EngineError('storage_error', `cannot connect to NATS at ${list.join(', ')}: ${(error as Error).message}`, { cause: error });
  }
}
