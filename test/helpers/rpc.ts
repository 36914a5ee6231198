import { connect, type EngineClient } from '../../engine/api/client.js';
import type { RemoteError } from '../../engine/api/status.js';

export interface CallResult {
  chunks: Buffer[];
  body: Buffer;
  error?: { status: number; code: string; message: string };
  ms: number;
}

export interface Rpc {
  client: EngineClient;
  /** Invoke; never throws: failures come back in `error`. */
  call(target: string, data?: Buffer | string, options?: { timeoutMs?: number; headers?: Record<string, string> }): Promise<CallResult>;
  /** InvokeStream with the request body sent in parts. */
  callStreaming(target: string, parts: Buffer[], options?: { timeoutMs?: number }): Promise<CallResult>;
  session(): { call(target: string, data?: Buffer | string, options?: { timeoutMs?: number }): Promise<CallResult>; close(): void };
  enqueue(target: string, data?: Buffer | string, options?: { maxAttempts?: number; delayMs?: number; id?: string }): Promise<{ id: string; duplicate: boolean }>;
  status(id: string): Promise<{ state: string; attempts: number; lastError: string; result: Buffer }>;
  close(): void;
}

function failure(error: unknown): CallResult['error'] {
  const remote = error as RemoteError;
  return { status: remote.status ?? -1, code: String(remote.code ?? ''), message: remote.message };
}

async function collect(stream: AsyncIterable<Buffer>, started: number): Promise<CallResult> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream) chunks.push(chunk);
    return { chunks, body: Buffer.concat(chunks), ms: Date.now() - started };
  } catch (error) {
    return { chunks, body: Buffer.concat(chunks), error: failure(error), ms: Date.now() - started };
  }
}

/** The engine's own client, shaped for tests: outcomes as values, errors with their gRPC status. */
export function connectRpc(address: string): Rpc {
  const client = connect(address);
  return {
    client,
    call: (target, data, options = {}) => collect(client.invoke(target, data ?? Buffer.alloc(0), options), Date.now()),
    callStreaming: (target, parts, options = {}) => collect(client.invokeStream(target, parts, options), Date.now()),
    session() {
      const session = client.session();
      return {
        async call(target, data, options = {}) {
          const started = Date.now();
          try {
            const chunks = await session.call(target, data ?? Buffer.alloc(0), options);
            return { chunks, body: Buffer.concat(chunks), ms: Date.now() - started };
          } catch (error) {
            return { chunks: [], body: Buffer.alloc(0), error: failure(error), ms: Date.now() - started };
          }
        },
        close: () => session.close(),
      };
    },
    async enqueue(target, data, options = {}) {
      const reply = await client.enqueue(target, data ?? Buffer.alloc(0), options);
      return { id: reply.id, duplicate: reply.duplicate };
    },
    async status(id) {
      const status = await client.status(id);
      return { state: String(status.state), attempts: status.attempts, lastError: status.lastError, result: status.result };
    },
    close: () => client.close(),
  };
}
