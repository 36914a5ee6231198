import type { Deadline, Metadata } from '@grpc/grpc-js';
import { withTrailers } from './request-trace.js';
import { callDeadlineMs } from './long-deadlines.js';
import type { Invocation } from './facade.js';
import { OverloadError } from '../errors/index.js';
import { statusFromError } from './status.js';

/**
 * Largest result message (Chunk, SessionFrame data) the engine sends: 1 MiB, well under the 4 MiB
 * default receive limit of every official gRPC library, so default clients take any result.
 */
export const MAX_RESULT_MESSAGE_BYTES = 1024 * 1024;

/** A chunk as pieces of at most MAX_RESULT_MESSAGE_BYTES (the same Buffer when it fits). */
export function splitChunk(chunk: Buffer): Buffer[] {
  if (chunk.length <= MAX_RESULT_MESSAGE_BYTES) return [chunk];
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < chunk.length; offset += MAX_RESULT_MESSAGE_BYTES) pieces.push(chunk.subarray(offset, offset + MAX_RESULT_MESSAGE_BYTES));
  return pieces;
}

/** Absolute deadline (epoch ms, 0 = none) from the gRPC call's deadline (long-deadlines.ts) and a per-request timeout. */
export function deadlineOf(call: { getDeadline(): Deadline; metadata: Metadata }, timeoutMs: number): number {
  return withTimeout(callDeadlineMs(call), timeoutMs);
}

/** The earlier of `deadline` (epoch ms, 0 = none) and now + `timeoutMs` (0 = none). */
export function withTimeout(deadline: number, timeoutMs: number): number {
  if (timeoutMs <= 0) return deadline;
  const fromTimeout = Date.now() + timeoutMs;
  return deadline === 0 ? fromTimeout : Math.min(deadline, fromTimeout);
}

/** Streams writable from the server: the result half of Invoke and InvokeStream. */
interface ChunkStream {
  write(message: { data: Buffer }): boolean;
  end(metadata?: Metadata): void;
  emit(event: 'error', status: object): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

export interface SlowReaderLimits {
  /** Result bytes waiting for a slow reader before it may be cut off. */
  maxPendingBytes: number;
  /** ...once it has also not taken anything for this long. */
  slowReaderMs: number;
}

/**
 * Sends an invocation's result chunks down a server stream. The facade cannot pause a worker, so
 * when the client reads slower than the worker writes, chunks wait here (not piled into grpc-js)
 * until 'drain'. A burst is fine; a reader that leaves more than `maxPendingBytes` waiting AND
 * takes nothing for `slowReaderMs` gets RESOURCE_EXHAUSTED, so memory cannot grow without bound.
 */
export function pipeResult(invocation: Invocation, call: ChunkStream, limits: SlowReaderLimits, trailers?: Metadata): { settled(): boolean } {
  let pending: Buffer[] | undefined;
  let pendingBytes = 0;
  let lastProgress = 0;
  let finish: (() => void) | undefined;
  let settled = false;

  const flush = (): void => {
    lastProgress = Date.now();
    while (pending && pending.length > 0) {
      const chunk = pending.shift() as Buffer;
      pendingBytes -= chunk.length;
      if (!call.write({ data: chunk })) {
        call.once('drain', flush);
        return;
      }
    }
    pending = undefined;
    finish?.();
  };

  invocation.listen({
    onChunk(whole) {
      if (settled) return;
      for (const chunk of splitChunk(whole)) if (!settled) onPiece(chunk);
    },
    onEnd() {
      if (settled) return;
      settled = true;
      finish = () => (trailers ? call.end(trailers) : call.end());
      if (!pending) finish();
    },
    onError(error) {
      if (settled) return;
      settled = true;
      finish = () => call.emit('error', withTrailers(statusFromError(error), trailers));
      if (!pending) finish();
    },
  });
  return { settled: () => settled };

  function onPiece(chunk: Buffer): void {
    if (pending) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes > limits.maxPendingBytes && Date.now() - lastProgress > limits.slowReaderMs) {
        settled = true;
        invocation.cancel('the client reads the result too slowly');
        pending = undefined;
        call.emit('error', withTrailers(statusFromError(new OverloadError('queue_full', `the client reads the result too slowly: more than ${limits.maxPendingBytes} bytes waited over ${limits.slowReaderMs} ms`)), trailers));
      }
      return;
    }
    if (!call.write({ data: chunk })) {
      pending = [];
      lastProgress = Date.now();
      call.once('drain', flush);
    }
  }
}
