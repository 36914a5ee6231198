/**
 * Invocations of a native worker, one at a time (the host declares concurrency 1): collects each
 * channel's body until END, calls the app, frames what it writes, and turns its return code into
 * END or ERROR. A cancelled channel makes the app's next (or blocked) write return
 * COCAINE_CANCELLED, and nothing more is sent on it.
 */
import { FrameType, MAX_FRAME_PAYLOAD, type ErrorPayload, type Frame, type InvokePayload } from '../../../engine/protocol/frames.js';
import type { HostedApp } from './app-client.js';
import { HANDLER_NOT_FOUND, HANDLER_OK } from './app-protocol.js';
import type { Wire } from '../../../engine/protocol/wire.js';

interface Invocation {
  channel: number;
  event: string;
  headersJson: string;
  body: Buffer[];
  bodyBytes: number;
  ended: boolean;
  cancelled: boolean;
}

export class Dispatcher {
  private readonly invocations = new Map<number, Invocation>();
  /** Channels in arrival order, waiting for their END or for the running call. */
  private readonly queue: number[] = [];
  private running: Invocation | undefined;
  private idleWaiters: Array<() => void> = [];
  private app: HostedApp | undefined;

  /** `onCancel(channel)`: the running invocation on channel was cancelled (its service requests go too). */
  constructor(
    private readonly wire: Wire,
    private readonly onCancel: (channel: number) => void = () => {},
  ) {}

  /** Whether `channel` is the running invocation and not cancelled (its services may be used). */
  isLive(channel: number): boolean {
    return this.running?.channel === channel && !this.running.cancelled;
  }

  /** The app is bound after the dispatcher exists: its write callback needs `write` below. */
  attach(app: HostedApp): void {
    this.app = app;
  }

  /** A chunk the app wrote (on the app thread) for `channel`, in order. */
  readonly write = (channel: number, data: Buffer): void => {
    const invocation = this.running;
    if (!invocation || invocation.channel !== channel || invocation.cancelled) return;
    // One write larger than a frame may carry becomes several chunks, in order.
    for (let offset = 0; offset < data.length; offset += MAX_FRAME_PAYLOAD) {
      this.wire.send(FrameType.CHUNK, channel, data.subarray(offset, offset + MAX_FRAME_PAYLOAD));
    }
  };

  onFrame(frame: Frame): void {
    const { type, channel } = frame;
    if (type === FrameType.INVOKE) {
      if (this.invocations.has(channel)) throw new Error(`INVOKE on channel ${channel}, which is already open`);
      const invoke = JSON.parse(frame.payload.toString('utf8')) as InvokePayload;
      if (typeof invoke.event !== 'string') throw new Error(`INVOKE on channel ${channel} has no event name`);
      const headers: Record<string, string> = Object.create(null) as Record<string, string>;
      for (const [name, value] of Object.entries(invoke.headers ?? {})) headers[name.toLowerCase()] = String(value);
      const headersJson = JSON.stringify(headers);
      this.invocations.set(channel, { channel, event: invoke.event, headersJson, body: [], bodyBytes: 0, ended: false, cancelled: false });
      this.queue.push(channel);
      return;
    }
    const invocation = this.invocations.get(channel);
    if (!invocation) return; // a finished channel: dropped
    if (type === FrameType.CHUNK) {
      if (invocation.ended) throw new Error(`CHUNK on channel ${channel} after its END`);
      // The decoder's views are never reused by it: kept as they are until the body is joined.
      invocation.body.push(frame.payload);
      invocation.bodyBytes += frame.payload.length;
    } else if (type === FrameType.END) {
      invocation.ended = true;
      this.startNext();
    } else if (type === FrameType.ERROR) {
      this.cancel(invocation);
    }
  }

  /** Cancels every call (TERMINATE) and resolves once none runs. */
  drain(): Promise<void> {
    for (const invocation of [...this.invocations.values()]) this.cancel(invocation);
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private cancel(invocation: Invocation): void {
    invocation.cancelled = true;
    if (invocation === this.running) {
      this.app?.cancel(invocation.channel);
      this.onCancel(invocation.channel);
    } else {
      this.forget(invocation.channel);
    }
  }

  private forget(channel: number): void {
    this.invocations.delete(channel);
    const index = this.queue.indexOf(channel);
    if (index >= 0) this.queue.splice(index, 1);
  }

  private startNext(): void {
    if (this.running || !this.app) return;
    const next = this.invocations.get(this.queue[0]);
    if (!next?.ended) return;
    this.queue.shift();
    this.running = next;
    void this.run(this.app, next);
  }

  private async run(app: HostedApp, invocation: Invocation): Promise<void> {
    const body = Buffer.concat(invocation.body, invocation.bodyBytes);
    invocation.body = [];
    let error: ErrorPayload | undefined;
    try {
      const result = await app.handle(invocation.event, invocation.headersJson, body, invocation.channel);
      if (result.misuse) {
        error = { code: 'handler', message: result.misuse };
      } else if (result.code === HANDLER_NOT_FOUND) {
        error = { code: 'not_found', message: result.message || `no handler for event '${invocation.event}'` };
      } else if (result.code !== HANDLER_OK) {
        error = { code: 'handler', message: result.message || `handler returned ${result.code}` };
      }
    } catch (failure) {
      error = { code: 'internal', message: `calling cocaine_handle failed: ${(failure as Error).message}` };
    }
    if (!invocation.cancelled) {
      if (error) this.wire.send(FrameType.ERROR, invocation.channel, Buffer.from(JSON.stringify(error)));
      else this.wire.send(FrameType.END, invocation.channel);
    }
    this.running = undefined;
    this.forget(invocation.channel);
    if (this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const waiter of waiters) waiter();
      return;
    }
    this.startNext();
  }
}
