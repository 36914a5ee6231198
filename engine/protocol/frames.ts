/**
 * Worker protocol frames (docs/worker-protocol.md). This module is shared by the engine and the
 * Node runtime, so it imports nothing but Buffer.
 *
 * Frame: [u8 type][u32be channel][u32be length][length bytes payload]
 */
export const PROTOCOL_VERSION = 2;
/** Version-1 runtimes (no services) are still served. */
export const MIN_PROTOCOL_VERSION = 1;
/** Channels a worker opens (SERVICE) have the high bit set; the engine's stay below it. */
export const WORKER_CHANNEL_BASE = 0x80000000;
export const HEADER_SIZE = 9;
export const MAX_FRAME_PAYLOAD = 64 * 1024 * 1024;

export const FrameType = {
  HANDSHAKE: 1,
  HEARTBEAT: 2,
  TERMINATE: 3,
  INVOKE: 4,
  CHUNK: 5,
  END: 6,
  ERROR: 7,
  /** Worker → engine, on a worker channel: a service request (protocol version 2). */
  SERVICE: 8,
  /** Worker → engine: one structured log record, no answer (protocol version 2). */
  LOG: 9,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const CONTROL_CHANNEL = 0;

export interface Frame {
  type: number;
  channel: number;
  payload: Buffer;
}

export interface HandshakePayload {
  protocol: number;
  worker: string;
  pid: number;
  runtime: string;
  /** Sessions the runtime handles at once; 0 = as many as the engine sends. */
  concurrency: number;
  /** Events the app handles, when the runtime knows them. */
  events?: string[];
}

export interface TerminatePayload {
  code: number;
  reason: string;
}

export interface InvokePayload {
  event: string;
  headers: Record<string, string>;
  /** Absolute deadline, epoch ms; 0 = none. */
  deadline: number;
}

/** Error codes carried by ERROR frames. */
export type WireErrorCode = 'not_found' | 'handler' | 'cancelled' | 'deadline' | 'protocol' | 'internal';

/** SERVICE payload (docs/worker-protocol.md, "Services"). */
export interface ServicePayload {
  service: 'call' | 'emit' | 'storage' | string;
  /** The engine channel of the invocation the request belongs to; 0 = none. */
  parent: number;
  args?: Record<string, unknown>;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** LOG payload; the frame's channel is the invocation's (0 = none). */
export interface LogPayload {
  level: LogLevel;
  message: string;
  fields?: Record<string, unknown>;
}

export interface ErrorPayload {
  code: WireErrorCode;
  message: string;
}

const EMPTY = Buffer.alloc(0);

export function encodeFrame(type: number, channel: number, payload: Buffer = EMPTY): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  frame[0] = type;
  frame.writeUInt32BE(channel, 1);
  frame.writeUInt32BE(payload.length, 5);
  payload.copy(frame, HEADER_SIZE);
  return frame;
}

/** Header only, for callers that write header and payload separately (large chunks: no copy). */
export function encodeHeader(type: number, channel: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(HEADER_SIZE);
  header[0] = type;
  header.writeUInt32BE(channel, 1);
  header.writeUInt32BE(length, 5);
  return header;
}

export function encodeJson(type: number, channel: number, value: unknown): Buffer {
  return encodeFrame(type, channel, Buffer.from(JSON.stringify(value)));
}

export function decodeJson<T>(frame: Frame): T {
  return JSON.parse(frame.payload.toString('utf8')) as T;
}

/**
 * Incremental decoder: feed it socket data, get whole frames. Keeps at most one partial frame.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxPayload = MAX_FRAME_PAYLOAD) {}

  push(data: Buffer, onFrame: (frame: Frame) => void): void {
    let buffer: Buffer;
    if (this.pendingBytes === 0) {
      buffer = data;
    } else {
      this.pending.push(data);
      this.pendingBytes += data.length;
      // Wait for the whole frame before concatenating (large chunks arrive in many pieces).
      if (this.pendingBytes >= HEADER_SIZE) {
        const head = this.pending[0].length >= HEADER_SIZE ? this.pending[0] : Buffer.concat(this.pending);
        const need = HEADER_SIZE + head.readUInt32BE(5);
        if (this.pendingBytes < need) return;
      } else {
        return;
      }
      buffer = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let offset = 0;
    while (buffer.length - offset >= HEADER_SIZE) {
      const length = buffer.readUInt32BE(offset + 5);
      if (length > this.maxPayload) {
        throw new Error(`frame payload of ${length} bytes exceeds the limit of ${this.maxPayload}`);
      }
      const end = offset + HEADER_SIZE + length;
      if (end > buffer.length) break;
      onFrame({
        type: buffer[offset],
        channel: buffer.readUInt32BE(offset + 1),
        payload: buffer.subarray(offset + HEADER_SIZE, end),
      });
      offset = end;
    }
    if (offset < buffer.length) {
      const rest = buffer.subarray(offset);
      this.pending.push(rest);
      this.pendingBytes = rest.length;
    }
  }
}
