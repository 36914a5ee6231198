/**
 * The main thread's side of services (docs/worker-protocol.md, "Services (version 2)"): opens a
 * worker channel per request (0x80000000 | k, k counting up from 1), sends SERVICE, the body and
 * END, collects the engine's CHUNKs until END (or its ERROR), and hands the outcome back. When the
 * invocation a request belongs to is cancelled, its open channels are cancelled with
 * ERROR {"code":"cancelled"} and their answers are never delivered.
 */
import { FrameType, MAX_FRAME_PAYLOAD, WORKER_CHANNEL_BASE, type Frame, type ServicePayload } from '../../../engine/protocol/frames.js';
import type { ServiceAnswer } from './app-protocol.js';
import type { Wire } from '../../../engine/protocol/wire.js';

export interface ServiceRequest {
  id: number;
  parent: number;
  service: string;
  args: Record<string, unknown>;
  body: Uint8Array;
}

interface OpenChannel {
  id: number;
  parent: number;
  chunks: Buffer[];
}

/** Highest k a worker channel may carry (the channel must stay a u32 with the high bit set). */
const MAX_K = 0x7fffffff;

export class ServiceChannels {
  private readonly open = new Map<number, OpenChannel>();
  private nextK = 1;

  /**
   * `answer` delivers an outcome to the app thread; `live(parent)` says whether the invocation
   * on `parent` may still make requests (0, load time, always may).
   */
  constructor(
    private readonly wire: Wire,
    private readonly answer: (answer: ServiceAnswer) => void,
    private readonly live: (parent: number) => boolean,
  ) {}

  request(request: ServiceRequest): void {
    const { id, parent } = request;
    if (parent !== 0 && !this.live(parent)) {
      // Cancelled before the request reached this thread: nothing goes to the engine.
      this.answer({ id, error: { code: 'cancelled', message: 'the invocation was cancelled' } });
      return;
    }
    if (this.nextK > MAX_K) {
      this.answer({ id, error: { code: 'internal', message: 'this worker has used up its service channels' } });
      return;
    }
    const channel = (WORKER_CHANNEL_BASE | this.nextK++) >>> 0;
    this.open.set(channel, { id, parent, chunks: [] });
    const payload: ServicePayload = { service: request.service, parent, args: request.args };
    this.wire.send(FrameType.SERVICE, channel, Buffer.from(JSON.stringify(payload)));
    const body = Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength);
    for (let offset = 0; offset < body.length; offset += MAX_FRAME_PAYLOAD) {
      this.wire.send(FrameType.CHUNK, channel, body.subarray(offset, offset + MAX_FRAME_PAYLOAD));
    }
    this.wire.send(FrameType.END, channel);
  }

  /** A frame from the engine on a worker channel; frames for a finished channel are dropped. */
  onFrame(frame: Frame): void {
    const open = this.open.get(frame.channel);
    if (!open) return;
    if (frame.type === FrameType.CHUNK) {
      // The decoder's views are not reused by it: kept until END.
      open.chunks.push(frame.payload);
    } else if (frame.type === FrameType.END) {
      this.open.delete(frame.channel);
      this.answer({ id: open.id, body: Buffer.concat(open.chunks) });
    } else if (frame.type === FrameType.ERROR) {
      this.open.delete(frame.channel);
      this.answer({ id: open.id, error: parseError(frame.payload) });
    }
  }

  /** The invocation on `parent` was cancelled or ended: cancels its open requests. */
  cancelParent(parent: number): void {
    for (const [channel, open] of this.open) {
      if (open.parent !== parent) continue;
      this.open.delete(channel);
      this.wire.send(FrameType.ERROR, channel, Buffer.from(JSON.stringify({ code: 'cancelled', message: 'the invocation was cancelled' })));
    }
  }
}

function parseError(payload: Buffer): { code: string; message: string } {
  try {
    const error = JSON.parse(payload.toString('utf8')) as { code?: unknown; message?: unknown };
    const code = typeof error.code === 'string' && error.code !== '' ? error.code : 'internal';
    return { code, message: typeof error.message === 'string' ? error.message : code };
  } catch {
    return { code: 'internal', message: `unreadable ERROR from the engine: ${payload.toString('utf8').slice(0, 200)}` };
  }
}
