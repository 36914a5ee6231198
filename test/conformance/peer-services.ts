/** What the kit's peer records of the channels a worker opens with SERVICE (protocol 2). */
import { FrameType } from '../../engine/protocol/frames.js';
import type { SeenFrame } from './peer.js';

/** A channel the worker opened with SERVICE (protocol 2), as the kit saw it. */
export interface KitServiceChannel {
  readonly id: number;
  /** The SERVICE payload's raw text, and parsed (undefined when it is not JSON). */
  readonly text: string;
  readonly request?: { service?: unknown; parent?: unknown; args?: Record<string, unknown> };
  readonly chunks: Buffer[];
  /** Frames the worker sent after SERVICE, in order. */
  readonly frames: SeenFrame[];
  ended: boolean;
  /** The ERROR the worker sent on it (its cancel). */
  error?: { code: string; message: string };
}

/** Records one frame the worker sent on a worker channel (SERVICE opens it). */
export function recordServiceFrame(services: Map<number, KitServiceChannel>, frame: SeenFrame, payload: Buffer | undefined): void {
  const text = payload?.toString('utf8') ?? '';
  if (frame.type === FrameType.SERVICE) {
    let request: KitServiceChannel['request'];
    try {
      request = JSON.parse(text) as KitServiceChannel['request'];
    } catch {
      // not JSON: the check says so
    }
    services.set(frame.channel, { id: frame.channel, text, request, chunks: [], frames: [], ended: false });
    return;
  }
  const service = services.get(frame.channel);
  if (!service) return;
  service.frames.push(frame);
  if (frame.type === FrameType.CHUNK && payload) service.chunks.push(Buffer.from(payload));
  if (frame.type === FrameType.END) service.ended = true;
  if (frame.type === FrameType.ERROR) {
    try {
      const parsed = JSON.parse(text) as { code?: unknown; message?: unknown };
      service.error = { code: String(parsed.code), message: String(parsed.message ?? '') };
    } catch {
      service.error = { code: '?', message: text };
    }
  }
}
