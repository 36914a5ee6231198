import type { ClientDuplexStream, ServiceError } from '@grpc/grpc-js';
import { CancelledError, EngineError } from '../errors/index.js';
import type { SessionFrameMessage } from './messages.js';
import { errorFromFrame, errorFromStatus } from './status.js';

export interface SessionCallOptions {
  headers?: Record<string, string>;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Run on the node this key maps to (docs/clients.md, "Placement"). */
  routingKey?: string;
}

interface PendingCall {
  chunks: Buffer[];
  resolve(chunks: Buffer[]): void;
  reject(error: Error): void;
  /** Removes the AbortSignal listener, if any. */
  cleanup?: () => void;
}

const NO_HEADERS: Record<string, string> = {};

/**
 * Client side of Engine.Session: each call is one frame out (invoke + data + end) and usually
 * one frame back (data + end). Results resolve as the chunks received.
 */
export class SessionClient {
  private nextId = 1;
  private readonly pending = new Map<number, PendingCall>();
  private failure: Error | undefined;
  private closing = false;

  constructor(private readonly stream: ClientDuplexStream<SessionFrameMessage, SessionFrameMessage>) {
    stream.on('data', (frame: SessionFrameMessage) => this.onFrame(frame));
    stream.on('error', (error: ServiceError) => this.failAll(this.closing ? new CancelledError('the session was closed') : errorFromStatus(error)));
    stream.on('end', () => this.failAll(new EngineError('cancelled', 'the engine ended the session')));
  }

  get inFlight(): number {
    return this.pending.size;
  }

  call(target: string, data?: Buffer | string, options: SessionCallOptions = {}): Promise<Buffer[]> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const body = data === undefined ? undefined : typeof data === 'string' ? Buffer.from(data) : data;
    return new Promise<Buffer[]>((resolve, reject) => {
      const pending: PendingCall = { chunks: [], resolve, reject };
      this.pending.set(id, pending);
      const invoke = { target, headers: options.headers ?? NO_HEADERS, timeoutMs: options.timeoutMs ?? 0 };
      this.stream.write({ id, invoke: options.routingKey ? { ...invoke, routingKey: options.routingKey } : invoke, data: body, end: true });
      const signal = options.signal;
      if (signal) {
        const onAbort = () => {
          if (!this.pending.delete(id)) return;
          this.stream.write({ id, error: { status: 1, code: 'cancelled', message: 'cancelled by the client' } });
          reject(new CancelledError());
        };
        if (signal.aborted) onAbort();
        else {
          signal.addEventListener('abort', onAbort, { once: true });
          pending.cleanup = () => signal.removeEventListener('abort', onAbort);
        }
      }
    });
  }

  /** Ends the session: calls in flight are answered first. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.stream.end();
  }

  /** Drops the session at once; calls in flight fail with `cancelled`. */
  cancel(): void {
    this.closing = true;
    this.stream.cancel();
  }

  private onFrame(frame: SessionFrameMessage): void {
    const call = this.pending.get(frame.id);
    if (!call) return;
    if (frame.error) {
      // Answers a refused duplicate `invoke` on this id; the open call goes on (docs/clients.md).
      if (frame.error.code === 'session_id_in_use') return;
      this.pending.delete(frame.id);
      call.cleanup?.();
      call.reject(errorFromFrame(frame.error));
      return;
    }
    if (frame.data && frame.data.length > 0) call.chunks.push(frame.data);
    if (frame.end) {
      this.pending.delete(frame.id);
      call.cleanup?.();
      call.resolve(call.chunks);
    }
  }

  private failAll(error: Error): void {
    this.failure ??= error;
    const calls = [...this.pending.values()];
    this.pending.clear();
    for (const call of calls) {
      call.cleanup?.();
      call.reject(error);
    }
  }
}
