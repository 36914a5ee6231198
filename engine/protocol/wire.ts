import type { Socket } from 'node:net';
import { FrameType, HEADER_SIZE, MAX_FRAME_PAYLOAD } from './frames.js';

/** Payloads above this go to the socket as their own buffer (no copy); smaller ones are copied into a slab. */
const INLINE_MAX = 16 * 1024;
const SLAB_SIZE = 256 * 1024;
/** Bytes queued (batched + in the socket) above which producers wait for 'drain'. */
const HIGH_WATER = 1024 * 1024;

/**
 * A worker runtime's outgoing side, shared by the Node and native hosts. Frames are written into a
 * slab and handed to the socket once per event-loop turn (one write, or one writev when large
 * payloads are involved): tens of thousands of small frames per second cost a few syscalls, not
 * one each. Producers of streamed results check `congested` and park on `whenDrained()`, so a fast
 * generator never buffers more than HIGH_WATER bytes ahead of the socket.
 */
export class Wire {
  private segments: Buffer[] = [];
  private slab = Buffer.allocUnsafe(SLAB_SIZE);
  private start = 0;
  private pos = 0;
  private batchedBytes = 0;
  private scheduled = false;
  private drainWaiters: Array<() => void> = [];
  private drainListening = false;

  constructor(private readonly socket: Socket) {}

  send(type: number, channel: number, payload?: Buffer): void {
    const length = payload === undefined ? 0 : payload.length;
    if (length > INLINE_MAX) {
      this.header(type, channel, length);
      this.cut();
      this.segments.push(payload!);
    } else {
      this.header(type, channel, length);
      if (length > 0) {
        payload!.copy(this.slab, this.pos);
        this.pos += length;
      }
    }
    this.batchedBytes += HEADER_SIZE + length;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** One result chunk: several CHUNK frames, in order, when it is larger than a frame may carry. */
  sendChunk(channel: number, payload: Buffer): void {
    if (payload.length <= MAX_FRAME_PAYLOAD) {
      this.send(FrameType.CHUNK, channel, payload);
      return;
    }
    for (let offset = 0; offset < payload.length; offset += MAX_FRAME_PAYLOAD) {
      this.send(FrameType.CHUNK, channel, payload.subarray(offset, offset + MAX_FRAME_PAYLOAD));
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

  readonly flush = (): void => {
    this.scheduled = false;
    this.cut();
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

  private readonly onDrain = (): void => {
    this.drainListening = false;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const waiter of waiters) waiter();
  };

  private header(type: number, channel: number, length: number): void {
    // Room for the header, and for the payload when it is inlined.
    const need = HEADER_SIZE + (length > INLINE_MAX ? 0 : length);
    if (this.pos + need > this.slab.length) {
      this.cut();
      this.slab = Buffer.allocUnsafe(Math.max(SLAB_SIZE, need));
      this.start = this.pos = 0;
    }
    // Same layout as encodeHeader() in engine/protocol/frames.ts, written in place.
    const slab = this.slab;
    slab[this.pos] = type;
    slab.writeUInt32BE(channel, this.pos + 1);
    slab.writeUInt32BE(length, this.pos + 5);
    this.pos += HEADER_SIZE;
  }

  /** Closes the current slab region into a segment (the socket keeps a view of it). */
  private cut(): void {
    if (this.pos > this.start) {
      this.segments.push(this.slab.subarray(this.start, this.pos));
      this.start = this.pos;
    }
  }
}
