import type { Socket } from 'node:net';
import { FrameDecoder, HEADER_SIZE, encodeFrame, encodeHeader, type Frame } from '../protocol/frames.js';

const COALESCE_LIMIT = 256 * 1024;

/**
 * A framed duplex over the worker's socket. Outgoing frames are batched and written once per
 * event-loop turn (cork/uncork), which is what lets one socket carry hundreds of thousands of
 * frames per second; one write per frame does not.
 */
export class FrameConnection {
  private readonly decoder = new FrameDecoder();
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private flushScheduled = false;
  private closed = false;
  lastReceivedAt = Date.now();

  constructor(
    private readonly socket: Socket,
    onFrame: (frame: Frame) => void,
    onClose: (error?: Error) => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (data: Buffer) => {
      this.lastReceivedAt = Date.now();
      try {
        this.decoder.push(data, onFrame);
      } catch (error) {
        this.destroy();
        onClose(error as Error);
      }
    });
    socket.once('close', () => {
      this.closed = true;
      onClose();
    });
    socket.on('error', () => {
      // 'close' follows and reports it.
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(type: number, channel: number, payload?: Buffer): void {
    if (this.closed) return;
    if (payload && payload.length > 64 * 1024) {
      // Large chunk: header and payload as separate buffers, no copy.
      this.batch.push(encodeHeader(type, channel, payload.length), payload);
      this.batchBytes += HEADER_SIZE + payload.length;
    } else {
      const frame = encodeFrame(type, channel, payload);
      this.batch.push(frame);
      this.batchBytes += frame.length;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const batch = this.batch;
    this.batch = [];
    const bytes = this.batchBytes;
    this.batchBytes = 0;
    if (this.closed || batch.length === 0) return;
    if (batch.length === 1) {
      this.socket.write(batch[0]);
      return;
    }
    if (bytes <= COALESCE_LIMIT) {
      // One copy into one write beats a writev of many small buffers.
      this.socket.write(Buffer.concat(batch, bytes));
    } else {
      this.socket.cork();
      for (const buffer of batch) this.socket.write(buffer);
      this.socket.uncork();
    }
  };

  /** Writes what is batched, then closes our side. */
  end(): void {
    this.flush();
    this.socket.end();
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }
}
