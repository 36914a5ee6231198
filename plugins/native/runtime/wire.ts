import type { Socket } from 'node:net';
import { HEADER_SIZE, encodeHeader } from '../../../engine/protocol/frames.js';

/** Payloads up to this size are copied next to their header; larger ones are written as they are. */
const INLINE_MAX = 16 * 1024;
/** Bytes queued (batched + in the socket) above which the app's writes wait for 'drain'. */
const HIGH_WATER = 1024 * 1024;

/**
 * The host's outgoing frames, handed to the socket once per event-loop turn (corked), so a
 * handler writing many small chunks costs a few syscalls rather than one per frame.
 */
export class Wire {
  private segments: Buffer[] = [];
  private batchedBytes = 0;
  private scheduled = false;
  private drainWaiters: Array<() => void> = [];
  private drainListening = false;

  constructor(private readonly socket: Socket) {}

  send(type: number, channel: number, payload?: Buffer): void {
    const length = payload?.length ?? 0;
    if (length > INLINE_MAX) {
      this.segments.push(encodeHeader(type, channel, length), payload!);
    } else {
      const frame = Buffer.allocUnsafe(HEADER_SIZE + length);
      frame[0] = type;
      frame.writeUInt32BE(channel, 1);
      frame.writeUInt32BE(length, 5);
      if (length > 0) payload!.copy(frame, HEADER_SIZE);
      this.segments.push(frame);
    }
    this.batchedBytes += HEADER_SIZE + length;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  get congested(): boolean {
    return this.batchedBytes + this.socket.writableLength > HIGH_WATER;
  }

  /** Calls `callback` once the queued bytes went to the kernel (always asynchronously). */
  whenDrained(callback: () => void): void {
    this.flush();
    if (!this.socket.writableNeedDrain) {
      setImmediate(callback);
      return;
    }
    this.drainWaiters.push(callback);
    if (!this.drainListening) {
      this.drainListening = true;
      this.socket.once('drain', this.onDrain);
    }
  }

  private readonly onDrain = (): void => {
    this.drainListening = false;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const waiter of waiters) waiter();
  };

  readonly flush = (): void => {
    this.scheduled = false;
    const segments = this.segments;
    if (segments.length === 0) return;
    this.segments = [];
    this.batchedBytes = 0;
    if (this.socket.destroyed) return;
    if (segments.length === 1) {
      this.socket.write(segments[0]);
      return;
    }
    this.socket.cork();
    for (const segment of segments) this.socket.write(segment);
    this.socket.uncork();
  };
}
