import type { ClientDuplexStream, ServiceError } from '@grpc/grpc-js';
import { CancelledError, EngineError } from '../errors/index.js';
import type { EnqueueReplyMessage, EnqueueStreamReplyMessage, EnqueueStreamRequestMessage } from './messages.js';
import { errorFromFrame, errorFromStatus } from './status.js';

export interface EnqueueOptions {
  headers?: Record<string, string>;
  maxAttempts?: number;
  delayMs?: number;
  id?: string;
}

interface PendingEnqueue {
  resolve(reply: EnqueueReplyMessage): void;
  reject(error: Error): void;
}

const NO_HEADERS: Record<string, string> = {};

/**
 * Client side of Engine.EnqueueStream: each enqueue is one message out and one reply back, many
 * in flight on one stream. Each promise resolves once its event is durably queued.
 */
export class EnqueueStreamClient {
  private nextSeq = 1;
  private readonly pending = new Map<number, PendingEnqueue>();
  private failure: Error | undefined;
  private closing = false;
  private readonly ended: Promise<void>;

  constructor(private readonly stream: ClientDuplexStream<EnqueueStreamRequestMessage, EnqueueStreamReplyMessage>) {
    stream.on('data', (reply: EnqueueStreamReplyMessage) => this.onReply(reply));
    this.ended = new Promise<void>((resolve) => {
      stream.on('error', (error: ServiceError) => {
        this.failAll(this.closing && error.code === 1 ? new CancelledError('the enqueue stream was closed') : errorFromStatus(error));
        resolve();
      });
      stream.on('status', () => {
        this.failAll(new EngineError('cancelled', 'the engine ended the enqueue stream'));
        resolve();
      });
    });
  }

  /** Events sent and not answered yet. */
  get inFlight(): number {
    return this.pending.size;
  }

  enqueue(target: string, data?: Buffer | string, options: EnqueueOptions = {}): Promise<EnqueueReplyMessage> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new CancelledError('the enqueue stream is closing'));
    const seq = this.nextSeq++;
    return new Promise<EnqueueReplyMessage>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.stream.write({
        seq,
        event: {
          target,
          data: data === undefined ? Buffer.alloc(0) : typeof data === 'string' ? Buffer.from(data) : data,
          headers: options.headers ?? NO_HEADERS,
          maxAttempts: options.maxAttempts ?? 0,
          delayMs: options.delayMs ?? 0,
          id: options.id ?? '',
        },
      });
    });
  }

  /** Half-closes the stream; resolves once every event sent has its answer. */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      this.stream.end();
    }
    await this.ended;
  }

  /** Drops the stream at once; unanswered enqueues fail with `cancelled` (their events may still be queued). */
  cancel(): void {
    this.closing = true;
    this.stream.cancel();
  }

  private onReply(reply: EnqueueStreamReplyMessage): void {
    const pending = this.pending.get(reply.seq);
    if (!pending) return;
    this.pending.delete(reply.seq);
    if (reply.error) pending.reject(errorFromFrame(reply.error));
    else pending.resolve({ id: reply.id ?? '', duplicate: reply.duplicate ?? false });
  }

  private failAll(error: Error): void {
    this.failure ??= error;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const pending of all) pending.reject(error);
  }
}
