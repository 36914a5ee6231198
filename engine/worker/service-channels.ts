import { toEngineError, type EngineError } from '../errors/index.js';
import { FrameType, WORKER_CHANNEL_BASE, type Frame, type LogLevel } from '../protocol/frames.js';

/** The invocation a service request belongs to (its engine channel on the worker). */
export interface ParentInvocation {
  readonly channel: number;
  readonly event: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Absolute deadline, epoch ms. */
  readonly deadline: number;
  /** Emits without an explicit id so far: the k of `<event id>.<k>`. */
  emits: number;
}

/** Engine → worker answers on one worker channel. After `end` or `fail`, nothing more is sent. */
export interface ServiceReply {
  chunk(data: Buffer): void;
  end(): void;
  fail(error: EngineError): void;
}

/** Worker → engine side of one service request. */
export interface ServiceSession {
  onChunk(chunk: Buffer): void;
  onEnd(): void;
  /** The worker cancelled it, its parent ended or the worker died: stop; the reply is closed. */
  cancel(reason: string): void;
}

export interface ServiceRequest {
  app: string;
  workerId: string;
  service: string;
  args: Record<string, unknown>;
  /** undefined: made outside any handler (parent 0). */
  parent: ParentInvocation | undefined;
}

export interface LogRecord {
  app: string;
  workerId: string;
  level: LogLevel;
  message: string;
  fields: Record<string, unknown>;
  parent: ParentInvocation | undefined;
}

/** What serves a version-2 worker's requests (engine/services/dispatcher.ts). */
export interface ServiceHost {
  open(request: ServiceRequest, reply: ServiceReply): ServiceSession;
  log(record: LogRecord): void;
}

interface OpenService {
  parent: number;
  isCall: boolean;
  session: ServiceSession | undefined;
}

const LEVELS = new Set(['debug', 'info', 'warn', 'error']);

/** A worker without services (version 1, or no host) sent a version-2 frame: the violation, if it is one. */
export function refusedServiceFrame(frame: Frame, protocol: number): string | undefined {
  if (frame.type !== FrameType.SERVICE && frame.type !== FrameType.LOG) return undefined; // stray frame on a worker channel: dropped
  const why = protocol < 2 ? `handshook with protocol ${protocol}` : 'the engine serves no services here';
  return `sent a ${frame.type === FrameType.LOG ? 'LOG' : 'SERVICE'} frame but ${why} (protocol error)`;
}

/**
 * One worker's open service channels (worker-opened, ≥ 2^31), kept per parent invocation so that
 * a parent's end cancels them. Counts the parents that wait on a `call`: a worker whose every
 * running invocation waits is "blocked" and does not count towards pool-limit.
 */
export class ServiceChannels {
  private readonly open = new Map<number, OpenService>();
  private readonly byParent = new Map<number, Set<number>>();
  private readonly callsByParent = new Map<number, number>();
  private lastChannel = WORKER_CHANNEL_BASE;

  constructor(
    private readonly host: ServiceHost,
    private readonly app: string,
    private readonly workerId: string,
    private readonly send: (type: number, channel: number, payload?: Buffer) => void,
    private readonly onWaitingChange: () => void,
  ) {}

  /** Parents (invocation channels) with at least one `call` open. */
  get waitingParents(): number {
    return this.callsByParent.size;
  }

  /** A SERVICE or LOG frame, or any frame on a worker channel; returns a protocol violation to kill the worker for. */
  onFrame(frame: Frame, parentOf: (channel: number) => ParentInvocation | undefined): string | undefined {
    if (frame.type === FrameType.LOG) return frame.channel >= WORKER_CHANNEL_BASE ? 'sent a LOG frame on a worker channel (protocol error)' : this.onLog(frame, parentOf(frame.channel));
    if (frame.channel >= WORKER_CHANNEL_BASE) return this.onWorkerChannelFrame(frame, parentOf);
    return `sent a SERVICE frame on engine channel ${frame.channel} (protocol error)`;
  }

  /** A frame on a worker channel; returns a protocol violation to kill the worker for. */
  private onWorkerChannelFrame(frame: Frame, parentOf: (channel: number) => ParentInvocation | undefined): string | undefined {
    const channel = frame.channel;
    if (frame.type === FrameType.SERVICE) return this.onService(frame, parentOf);
    const open = this.open.get(channel);
    if (!open) return undefined; // finished or refused channel: dropped
    switch (frame.type) {
      case FrameType.CHUNK:
        open.session?.onChunk(frame.payload);
        return undefined;
      case FrameType.END:
        open.session?.onEnd();
        return undefined;
      case FrameType.ERROR:
        this.remove(channel);
        open.session?.cancel('cancelled by the handler');
        return undefined;
      default:
        return `sent frame type ${frame.type} on its service channel ${channel} (protocol error)`;
    }
  }

  /** A LOG frame; returns a protocol violation when it is malformed. */
  private onLog(frame: Frame, parent: ParentInvocation | undefined): string | undefined {
    let payload: { level?: unknown; message?: unknown; fields?: unknown };
    try {
      payload = JSON.parse(frame.payload.toString('utf8')) as typeof payload;
    } catch {
      return 'sent a LOG frame that is not JSON (protocol error)';
    }
    if (payload === null || typeof payload !== 'object' || typeof payload.message !== 'string' || typeof payload.level !== 'string' || !LEVELS.has(payload.level)) {
      return 'sent a LOG frame without a level (debug, info, warn, error) and a message (protocol error)';
    }
    const fields = payload.fields !== null && typeof payload.fields === 'object' && !Array.isArray(payload.fields) ? (payload.fields as Record<string, unknown>) : {};
    this.host.log({ app: this.app, workerId: this.workerId, level: payload.level as LogLevel, message: payload.message, fields, parent });
    return undefined;
  }

  /** The parent invocation finished or was cancelled: fail what it still has open. */
  parentClosed(parent: number, code: 'cancelled' | 'deadline_exceeded', message: string): void {
    const channels = this.byParent.get(parent);
    if (!channels) return;
    for (const channel of [...channels]) {
      const open = this.open.get(channel);
      if (!open) continue;
      this.remove(channel);
      this.send(FrameType.ERROR, channel, Buffer.from(JSON.stringify({ code, message })));
      open.session?.cancel(message);
    }
  }

  /** The worker is gone: cancel every session (a callee is cancelled with it). */
  closeAll(reason: string): void {
    const sessions = [...this.open.values()];
    this.open.clear();
    this.byParent.clear();
    this.callsByParent.clear();
    for (const open of sessions) open.session?.cancel(reason);
  }

  private onService(frame: Frame, parentOf: (channel: number) => ParentInvocation | undefined): string | undefined {
    const channel = frame.channel;
    if (channel <= this.lastChannel) return `opened service channel ${channel}, which is not above its last one (protocol error)`;
    this.lastChannel = channel;
    let payload: { service?: unknown; parent?: unknown; args?: unknown };
    try {
      payload = JSON.parse(frame.payload.toString('utf8')) as typeof payload;
    } catch {
      return 'sent a SERVICE frame that is not JSON (protocol error)';
    }
    if (payload === null || typeof payload !== 'object' || typeof payload.service !== 'string') return 'sent a SERVICE frame without a service name (protocol error)';
    const parentChannel = typeof payload.parent === 'number' && Number.isInteger(payload.parent) ? payload.parent : 0;
    const args = payload.args !== null && typeof payload.args === 'object' && !Array.isArray(payload.args) ? (payload.args as Record<string, unknown>) : {};
    const parent = parentChannel > 0 ? parentOf(parentChannel) : undefined;
    if (parentChannel > 0 && !parent) {
      // The invocation ended while the request was on its way: nothing to serve it for.
      this.send(FrameType.ERROR, channel, Buffer.from(JSON.stringify({ code: 'cancelled', message: `invocation ${parentChannel} has finished` })));
      return undefined;
    }
    const isCall = payload.service === 'call' && parent !== undefined;
    const open: OpenService = { parent: parentChannel, isCall, session: undefined };
    this.add(channel, open);
    const reply: ServiceReply = {
      chunk: (data) => {
        if (this.open.get(channel) === open) this.send(FrameType.CHUNK, channel, data);
      },
      end: () => {
        if (this.open.get(channel) !== open) return;
        this.remove(channel);
        this.send(FrameType.END, channel);
      },
      fail: (error) => {
        if (this.open.get(channel) !== open) return;
        this.remove(channel);
        this.send(FrameType.ERROR, channel, Buffer.from(JSON.stringify({ code: error.code, message: error.message })));
      },
    };
    try {
      open.session = this.host.open({ app: this.app, workerId: this.workerId, service: payload.service, args, parent }, reply);
    } catch (error) {
      reply.fail(toEngineError(error));
    }
    return undefined;
  }

  private add(channel: number, open: OpenService): void {
    this.open.set(channel, open);
    let set = this.byParent.get(open.parent);
    if (!set) this.byParent.set(open.parent, (set = new Set()));
    set.add(channel);
    if (open.isCall) {
      const calls = this.callsByParent.get(open.parent) ?? 0;
      this.callsByParent.set(open.parent, calls + 1);
      // Before the callee is dispatched: its app engine already sees this worker as waiting.
      if (calls === 0) this.onWaitingChange();
    }
  }

  private remove(channel: number): void {
    const open = this.open.get(channel);
    if (!open) return;
    this.open.delete(channel);
    const set = this.byParent.get(open.parent);
    set?.delete(channel);
    if (set?.size === 0) this.byParent.delete(open.parent);
    if (open.isCall) {
      const calls = (this.callsByParent.get(open.parent) ?? 1) - 1;
      if (calls > 0) this.callsByParent.set(open.parent, calls);
      else {
        this.callsByParent.delete(open.parent);
        this.onWaitingChange();
      }
    }
  }
}

