import type { Deadline } from '@grpc/grpc-js';
import type { Invocation } from './facade.js';
import { statusFromError } from './status.js';

/** Absolute deadline (epoch ms, 0 = none) from the gRPC call's deadline and a per-request timeout. */
export function deadlineOf(callDeadline: Deadline, timeoutMs: number): number {
  const fromCall = callDeadline instanceof Date ? callDeadline.getTime() : callDeadline;
  let deadline = Number.isFinite(fromCall) && fromCall > 0 ? fromCall : 0;
  if (timeoutMs > 0) {
    const fromTimeout = Date.now() + timeoutMs;
    deadline = deadline === 0 ? fromTimeout : Math.min(deadline, fromTimeout);
  }
  return deadline;
}

/** Streams writable from the server: the result half of Invoke and InvokeStream. */
interface ChunkStream {
  write(message: { data: Buffer }): boolean;
  end(): void;
  emit(event: 'error', status: object): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/**
 * Sends an invocation's result chunks down a server stream. The facade cannot pause a worker, so
 * when the client reads slower than the worker writes, chunks wait here (not piled into grpc-js)
 * until 'drain'; past `maxPendingBytes` the call is cancelled rather than growing without bound.
 */
export function pipeResult(invocation: Invocation, call: ChunkStream, maxPendingBytes: number): { settled(): boolean } {
  let pending: Buffer[] | undefined;
  let pendingBytes = 0;
  let finish: (() => void) | undefined;
  let settled = false;

  const flush = (): void => {
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
    onChunk(chunk) {
      if (settled) return;
      if (pending) {
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes > maxPendingBytes) {
          settled = true;
          invocation.cancel('the client reads the result too slowly');
          pending = undefined;
          call.emit('error', { code: 8, details: `the client read the result too slowly: more than ${maxPendingBytes} bytes waited to be sent` });
        }
        return;
      }
      if (!call.write({ data: chunk })) {
        pending = [];
        call.once('drain', flush);
      }
    },
    onEnd() {
      if (settled) return;
      settled = true;
      finish = () => call.end();
      if (!pending) finish();
    },
    onError(error) {
      if (settled) return;
      settled = true;
      finish = () => call.emit('error', statusFromError(error));
      if (!pending) finish();
    },
  });
  return { settled: () => settled };
}
