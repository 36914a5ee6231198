import type { Metadata, ServerDuplexStream } from '@grpc/grpc-js';
import { formatTraceparent, TRACEPARENT, withTraceHeaders } from '../trace/context.js';
import { tracedInvocation } from '../trace/traced-invocation.js';
import { beginRequestTrace, traceCarrier } from './request-trace.js';
import { EngineError, OverloadError } from '../errors/index.js';
import { deadlineOf, MAX_RESULT_MESSAGE_BYTES, withTimeout } from './call-utils.js';
import type { EngineFacade, Invocation } from './facade.js';
import type { ErrorMessage, SessionFrameMessage } from './messages.js';
import { invokeFields, sequenceField } from './request-fields.js';
import { placedInvoke } from './broadcast-service.js';
import { errorFrameOf } from './status.js';

/** Open session streams, so a shutdown can drain them. */
export type SessionRegistry = Set<SessionHandler>;

const EMPTY = Buffer.alloc(0);

/**
 * Result side of one multiplexed invocation. It holds the latest chunk back until the next chunk
 * or the end arrives, so a single-chunk result leaves as ONE frame carrying `data` and `end`.
 */
class SessionCall {
  held: Buffer | undefined;
  constructor(
    readonly id: number,
    readonly invocation: Invocation,
    private readonly session: SessionHandler,
    /** The engine's span of the call, sent on its last frame. */
    private readonly traceparent: string | undefined,
  ) {}

  onChunk(chunk: Buffer): void {
    const held = this.held;
    this.held = chunk;
    if (held !== undefined) this.session.send({ id: this.id, data: held });
  }

  onEnd(): void {
    const held = this.held;
    this.held = undefined;
    const frame: SessionFrameMessage = { id: this.id, data: held ?? EMPTY, end: true };
    if (this.traceparent) frame.traceparent = this.traceparent;
    this.session.finished(this, frame);
  }

  onError(error: Error): void {
    const held = this.held;
    this.held = undefined;
    if (held !== undefined) this.session.send({ id: this.id, data: held });
    const frame: SessionFrameMessage = { id: this.id, error: errorFrameOf(error) };
    if (this.traceparent) frame.traceparent = this.traceparent;
    this.session.finished(this, frame);
  }
}

/**
 * One Engine.Session stream: invocations multiplexed by frame id. Client frames: `invoke` opens
 * (and may carry data and end), `data` adds to the body, `end` closes the body, `error` cancels.
 * When our writes back up, reading new frames pauses until grpc-js drains.
 */
export class SessionHandler {
  private readonly open = new Map<number, SessionCall>();
  private readonly streamDeadline: number;
  private halfClosed = false;
  private draining = false;
  private closed = false;
  private paused = false;

  constructor(
    private readonly facade: EngineFacade,
    private readonly call: ServerDuplexStream<SessionFrameMessage, SessionFrameMessage>,
    private readonly registry: SessionRegistry,
  ) {
    this.streamDeadline = deadlineOf(call, 0);
    registry.add(this);
    call.on('data', (frame: SessionFrameMessage) => this.onFrame(frame));
    call.on('end', () => {
      this.halfClosed = true;
      this.maybeEnd();
    });
    call.on('cancelled', () => this.abandon('the client cancelled the session'));
    call.on('error', () => this.abandon('the session stream failed'));
    call.on('drain', () => {
      if (this.paused && !this.closed) {
        this.paused = false;
        call.resume();
      }
    });
  }

  /** Stops accepting invocations; the stream ends once those in flight are answered. */
  drain(): void {
    this.draining = true;
    this.maybeEnd();
  }

  /** Sends a frame; a `data` larger than MAX_RESULT_MESSAGE_BYTES goes as several frames, `end`/`error` on the last. */
  send(frame: SessionFrameMessage): void {
    if (this.closed) return;
    const data = frame.data;
    if (data && data.length > MAX_RESULT_MESSAGE_BYTES) {
      let offset = 0;
      for (; offset + MAX_RESULT_MESSAGE_BYTES < data.length; offset += MAX_RESULT_MESSAGE_BYTES) {
        this.write({ id: frame.id, data: data.subarray(offset, offset + MAX_RESULT_MESSAGE_BYTES) });
      }
      this.write({ ...frame, data: data.subarray(offset) });
      return;
    }
    this.write(frame);
  }

  private write(frame: SessionFrameMessage): void {
    if (!this.call.write(frame) && !this.paused) {
      this.paused = true;
      this.call.pause();
    }
  }

  finished(sessionCall: SessionCall, frame: SessionFrameMessage): void {
    if (this.open.get(sessionCall.id) !== sessionCall) return;
    this.open.delete(sessionCall.id);
    this.send(frame);
    if (this.open.size === 0) this.maybeEnd();
  }

  private onFrame(frame: SessionFrameMessage): void {
    const id = frame.id;
    if (frame.invoke) {
      this.start(id, frame);
      return;
    }
    const current = this.open.get(id);
    // Frames for ids already answered (the client had not seen the answer yet) are dropped.
    if (!current) return;
    if (frame.error) {
      this.open.delete(id);
      current.invocation.cancel(frame.error.message || 'cancelled by the client');
      if (this.open.size === 0) this.maybeEnd();
      return;
    }
    if (frame.data && frame.data.length > 0) current.invocation.write(frame.data);
    if (frame.end) current.invocation.end();
  }

  private start(id: number, frame: SessionFrameMessage): void {
    const header = frame.invoke!;
    if (this.open.has(id)) {
      // The open call on this id goes on untouched; this error answers the refused `invoke` only,
      // and its code tells the client so (docs/clients.md, "Session").
      this.reject(id, new EngineError('session_id_in_use', `session id ${id} is in use by an open call: the new invoke is refused, the open call goes on`));
      return;
    }
    if (this.draining) {
      this.reject(id, new OverloadError('shutting_down', 'the engine is shutting down: no new invocations on this session'));
      return;
    }
    let invocation: Invocation;
    // Each call continues its own invoke headers' traceparent, else the session stream's.
    const active = beginRequestTrace(this.facade.traces, traceCarrier(this.traceSource(header.headers), header.headers), { kind: 'session', target: header.target });
    let traceparent: string | undefined;
    try {
      sequenceField(id, 'id');
      const { app, event, headers, timeoutMs, routingKey } = invokeFields(header);
      let passed = headers;
      if (active) {
        passed = withTraceHeaders(headers, active.context);
        traceparent = passed.traceparent;
      }
      invocation = placedInvoke(this.facade, { app, event, headers: passed, deadline: withTimeout(this.streamDeadline, timeoutMs) }, routingKey);
    } catch (error) {
      active?.end({ error });
      this.reject(id, error, active ? (traceparent ?? formatTraceparent(active.context)) : undefined);
      return;
    }
    if (active) invocation = tracedInvocation(invocation, active);
    const sessionCall = new SessionCall(id, invocation, this, traceparent);
    this.open.set(id, sessionCall);
    if (frame.data && frame.data.length > 0) invocation.write(frame.data);
    if (frame.end) invocation.end();
    invocation.listen(sessionCall);
  }

  private reject(id: number, error: unknown, traceparent?: string): void {
    const message: ErrorMessage = errorFrameOf(error);
    this.send(traceparent ? { id, error: message, traceparent } : { id, error: message });
  }

  /** The stream's metadata when the call's own headers carry no traceparent. */
  private traceSource(headers: Record<string, string> | undefined): Metadata | undefined {
    if (headers && Object.keys(headers).some((key) => key.toLowerCase() === TRACEPARENT)) return undefined;
    return this.call.metadata;
  }

  private maybeEnd(): void {
    if (this.closed || this.open.size > 0) return;
    if (this.halfClosed || this.draining) {
      this.closed = true;
      this.registry.delete(this);
      this.call.end();
    }
  }

  private abandon(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.registry.delete(this);
    const calls = [...this.open.values()];
    this.open.clear();
    for (const sessionCall of calls) sessionCall.invocation.cancel(reason);
  }
}
