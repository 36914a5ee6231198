import { readFileSync } from 'node:fs';
/**
 * A test double of EngineFacade for the gRPC TRANSPORT tests only: trivial in-memory behaviour
 * with one event per transport feature, so the tests check the gRPC mapping, not an engine.
 */
import type { AppView, EngineFacade, Invocation, InvocationRequest, LogLine, NodeInfo, UploadAppInput } from '../../engine/api/facade.js';
import {
  CancelledError,
  DeadlineError,
  EngineError,
  HandlerError,
  InvalidInputError,
  NotFoundError,
  OverloadError,
  UnavailableError,
} from '../../engine/errors/index.js';
import type { EventStatus } from '../../engine/queue/types.js';
import { AsyncChannel } from '../../engine/util/async-channel.js';

type Listeners = Parameters<Invocation['listen']>[0];

class TestInvocation implements Invocation {
  private body: Buffer[] = [];
  private listeners: Listeners | undefined;
  private early: Array<() => void> = [];
  private done = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly request: InvocationRequest,
    private readonly facade: TransportTestFacade,
  ) {
    if (request.deadline > 0) {
      this.timer = setTimeout(() => this.fail(new DeadlineError(`deadline exceeded for ${request.app}@${request.event}`)), Math.max(0, request.deadline - Date.now()));
    }
  }

  write(chunk: Buffer): void {
    if (!this.done) this.body.push(chunk);
  }

  end(): void {
    if (this.done) return;
    const body = Buffer.concat(this.body);
    const { event } = this.request;
    switch (event) {
      case 'echo':
        this.emitChunk(body);
        this.finish();
        return;
      case 'chunks': {
        // body "N": N chunks "0".."N-1"
        const count = Number(body.toString());
        for (let i = 0; i < count; i++) this.emitChunk(Buffer.from(String(i)));
        this.finish();
        return;
      }
      case 'async-echo':
        setImmediate(() => {
          this.emitChunk(body);
          this.finish();
        });
        return;
      case 'slow':
        setTimeout(() => {
          this.emitChunk(body);
          this.finish();
        }, Number(body.toString()) || 100);
        return;
      case 'headers':
        this.emitChunk(Buffer.from(JSON.stringify({ headers: this.request.headers, deadline: this.request.deadline })));
        this.finish();
        return;
      case 'nothing':
        this.finish();
        return;
      case 'fail':
        this.emitChunk(Buffer.from('partial'));
        this.fail(new HandlerError(`handler says: ${body.toString()}`));
        return;
      case 'crash':
        this.fail(new UnavailableError('worker_crashed', 'worker 1 exited with code 3'));
        return;
      case 'full':
        this.fail(new OverloadError('queue_full', 'queue of app "test" is full (2)'));
        return;
      case 'stopped':
        this.fail(new UnavailableError('app_stopped', 'app "test" is stopped'));
        return;
      case 'flood': {
        // body "N": N chunks of 1 MiB, one every 5 ms, whatever the reader does (as a worker would)
        const count = Number(body.toString());
        let sent = 0;
        const next = () => {
          if (this.done) return;
          if (sent === count) return this.finish();
          this.emitChunk(Buffer.alloc(1024 * 1024, sent++ % 256));
          setTimeout(next, 5);
        };
        next();
        return;
      }
      case 'hang':
        return;
      default:
        this.fail(new NotFoundError('event_not_found', `event "${event}" is unknown`));
    }
  }

  cancel(reason = 'cancelled'): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.facade.cancelled.push(reason);
    this.facade.open.delete(this);
  }

  listen(listeners: Listeners): void {
    this.listeners = listeners;
    const early = this.early;
    this.early = [];
    for (const emit of early) emit();
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const channel = new AsyncChannel<Buffer>(64, () => this.cancel('the reader stopped'));
    this.listen({ onChunk: (c) => channel.push(c), onEnd: () => channel.close(), onError: (e) => channel.fail(e) });
    return channel[Symbol.asyncIterator]();
  }

  private deliver(emit: (listeners: Listeners) => void): void {
    if (this.listeners) emit(this.listeners);
    else this.early.push(() => emit(this.listeners!));
  }

  private emitChunk(chunk: Buffer): void {
    if (!this.done) this.deliver((l) => l.onChunk(chunk));
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.facade.open.delete(this);
    this.deliver((l) => l.onEnd());
  }

  private fail(error: Error): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.facade.open.delete(this);
    this.deliver((l) => l.onError(error));
  }
}

function view(name: string, sha256 = 'f'.repeat(64), size = 1): AppView {
  return {
    record: { name, manifest: { name, plugin: 'node', entrypoint: 'index.js', environment: {} }, sha256, size, uploadedAt: 1_700_000_000_000 },
    state: 'running',
    profile: 'default',
    inRunlist: true,
  };
}

export class TransportTestFacade implements EngineFacade {
  readonly requests: InvocationRequest[] = [];
  readonly cancelled: string[] = [];
  readonly open = new Set<TestInvocation>();
  /** With the spooled archive's bytes, read before the transport removes the file. */
  readonly uploads: Array<UploadAppInput & { bytes: Buffer }> = [];
  readonly events = new Map<string, EventStatus>();
  logsAborted = 0;
  /** Enqueue calls received; while `enqueueGate` is set each waits for it before answering. */
  enqueueCalls = 0;
  enqueueGate: Promise<void> | undefined;

  invoke(request: InvocationRequest): Invocation {
    if (request.app !== 'test') throw new NotFoundError('app_not_found', `app "${request.app}" is not deployed`);
    this.requests.push(request);
    const invocation = new TestInvocation(request, this);
    this.open.add(invocation);
    return invocation;
  }

  async enqueue(input: { app: string; event: string; data: Buffer; headers: Record<string, string>; maxAttempts?: number; delayMs?: number; id?: string }) {
    this.enqueueCalls++;
    if (this.enqueueGate) await this.enqueueGate;
    if (input.app !== 'test') throw new NotFoundError('app_not_found', `app "${input.app}" is not deployed`);
    const id = input.id ?? `ev-${this.events.size + 1}`;
    const duplicate = this.events.has(id);
    if (!duplicate) {
      this.events.set(id, {
        id,
        app: input.app,
        event: input.event,
        state: input.event === 'fail' ? 'FAILED' : 'COMPLETED',
        attempts: 1,
        maxAttempts: input.maxAttempts ?? 5,
        lastError: input.event === 'fail' ? 'boom' : undefined,
        result: input.event === 'fail' ? undefined : input.data,
        resultTruncated: false,
        createdAt: 1,
        updatedAt: 2,
      });
    }
    return { id, duplicate };
  }

  async status(id: string): Promise<EventStatus> {
    const status = this.events.get(id);
    if (!status) throw new NotFoundError('event_id_not_found', `event "${id}" is unknown`);
    return status;
  }

  async deadLetters(): Promise<EventStatus[]> {
    return [...this.events.values()].filter((event) => event.state === 'FAILED');
  }

  async redrive(id: string): Promise<EventStatus> {
    const status = await this.status(id);
    status.state = 'PENDING';
    return status;
  }

  async uploadApp(input: UploadAppInput): Promise<AppView> {
    if (input.archive.size < 10) throw new InvalidInputError('invalid_manifest', 'manifest.yaml: field "plugin" is required', { field: 'plugin' });
    this.uploads.push({ ...input, bytes: readFileSync(input.archive.path) });
    return view(input.name || 'from-manifest', input.archive.sha256, input.archive.size);
  }

  async listApps(): Promise<AppView[]> {
    return [view('test')];
  }
  async viewApp(name: string): Promise<AppView> {
    if (name !== 'test') throw new NotFoundError('app_not_found', `app "${name}" is not deployed`);
    return view(name);
  }
  async removeApp(name: string): Promise<void> {
    await this.viewApp(name);
  }
  async startApp(name: string, profile?: string): Promise<AppView> {
    return { ...(await this.viewApp(name)), profile: profile ?? 'default' };
  }
  async stopApp(name: string): Promise<AppView> {
    return { ...(await this.viewApp(name)), state: 'stopped' };
  }
  async restartApp(name: string, profile?: string): Promise<AppView> {
    return this.startApp(name, profile);
  }

  async *appLogs(name: string, options: { lines: number; follow: boolean; signal: AbortSignal }): AsyncIterable<LogLine> {
    await this.viewApp(name);
    for (let i = 0; i < options.lines; i++) yield { timestamp: i, workerId: 'w1', stream: 'stdout', line: `line ${i}` };
    if (!options.follow) return;
    let n = options.lines;
    try {
      while (!options.signal.aborted) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        yield { timestamp: n, workerId: 'w1', stream: 'stderr', line: `line ${n++}` };
      }
    } finally {
      if (options.signal.aborted) this.logsAborted++;
    }
  }

  async uploadProfile(name: string, content: Buffer) {
    if (content.toString().includes('pool-limit: 0')) {
      throw new InvalidInputError('invalid_profile', 'profile.pool-limit must be >= 1', { field: 'pool-limit' });
    }
    return { name, profile: { 'pool-limit': 3 } as never };
  }
  async listProfiles() {
    return ['default'];
  }
  async viewProfile(name: string) {
    if (name !== 'default') throw new NotFoundError('not_found', `profile "${name}" is unknown`);
    return { name, profile: { 'pool-limit': 10 } as never };
  }
  async removeProfile(name: string) {
    await this.viewProfile(name);
  }
  async viewRunlist() {
    return { test: 'default' };
  }
  async addToRunlist(app: string, profile: string) {
    return { test: 'default', [app]: profile };
  }
  async removeFromRunlist() {
    return {};
  }
  async listCrashlogs(app: string) {
    return [{ id: 'c1', app, workerId: 'w1', timestamp: 5, reason: 'exit 1' }];
  }
  async viewCrashlog(app: string, id: string) {
    if (id !== 'c1') throw new NotFoundError('not_found', `crashlog "${id}" is unknown`);
    return { id, app, workerId: 'w1', timestamp: 5, reason: 'exit 1', lines: ['a', 'b'] };
  }
  async removeCrashlogs() {}

  async info(options: { cluster: boolean }) {
    const node: NodeInfo = {
      nodeId: 'n1',
      version: '0.1.0',
      uptimeMs: 10,
      listen: '127.0.0.1:1',
      storage: 'fs',
      queue: 'local',
      isolate: 'process',
      apps: [
        {
          name: 'test',
          state: 'running',
          profile: 'default',
          poolSize: 1,
          busy: 0,
          idle: 1,
          pending: 0,
          sessions: 0,
          queuedEvents: 0,
          counters: { accepted: 1, completed: 1, failed: 0, rejected: 0, timeouts: 0, crashes: 0, spawned: 1 },
        },
      ],
      plugins: [{ name: 'node', version: '1', apiVersion: 1, source: 'builtin' }],
      seenAt: 3,
    };
    return { node, cluster: options.cluster ? [node, { ...node, nodeId: 'n2' }] : [] };
  }
}

export { CancelledError, EngineError };
