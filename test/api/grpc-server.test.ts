import { createHash } from 'node:crypto';
import { credentials, loadPackageDefinition, status, type Client, type GrpcObject, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type EngineClient } from '../../engine/api/client.js';
import { startGrpcServer, type GrpcServerHandle } from '../../engine/api/grpc-server.js';
import type { SessionFrameMessage } from '../../engine/api/messages.js';
import { ERROR_CODE_TRAILER } from '../../engine/api/status.js';
import { collect, failure, waitUntil } from './helpers.js';
import { TransportTestFacade } from './transport-facade.js';

const require = createRequire(import.meta.url);

const healthProtoPath = () => join(dirname(require.resolve('grpc-health-check/package.json')), 'proto/health/v1/health.proto');

describe('gRPC transport over a test facade', () => {
  const facade = new TransportTestFacade();
  let server: GrpcServerHandle;
  let client: EngineClient;

  beforeAll(async () => {
    server = await startGrpcServer(facade, { listen: '127.0.0.1:0', maxArchiveBytes: 4 * 1024 * 1024 });
    client = connect(server.address);
  });

  afterAll(async () => {
    client?.close();
    await server?.shutdown(1000);
  });

  it('binds a free port and reports it', () => {
    expect(server.port).toBeGreaterThan(0);
    expect(server.address).toBe(`127.0.0.1:${server.port}`);
  });

  it('Invoke streams result chunks in order and ends OK', async () => {
    expect((await client.call('test@echo', 'hello')).toString()).toBe('hello');
    const chunks = await collect(client.invoke('test@chunks', '5'));
    expect(chunks.map(String)).toEqual(['0', '1', '2', '3', '4']);
    expect(await collect(client.invoke('test@nothing'))).toEqual([]);
  });

  it('Invoke carries 16 MiB payloads both ways', async () => {
    const big = Buffer.alloc(16 * 1024 * 1024, 7);
    big[123] = 1;
    const result = await client.call('test@echo', big);
    expect(result.equals(big)).toBe(true);
  });

  it('maps failures to statuses with the cocaine-error-code trailer', async () => {
    const cases: Array<[string, number, string]> = [
      ['no-at-sign', status.INVALID_ARGUMENT, 'invalid_argument'],
      ['ghost@echo', status.NOT_FOUND, 'app_not_found'],
      ['test@unknown', status.NOT_FOUND, 'event_not_found'],
      ['test@fail', status.UNKNOWN, 'handler_error'],
      ['test@crash', status.UNAVAILABLE, 'worker_crashed'],
      ['test@full', status.RESOURCE_EXHAUSTED, 'queue_full'],
      ['test@stopped', status.FAILED_PRECONDITION, 'app_stopped'],
    ];
    for (const [target, expected, code] of cases) {
      const error = await failure(client.call(target, 'x'));
      expect({ target, status: error.status, code: error.code }).toEqual({ target, status: expected, code });
    }
    const raw = await new Promise<ServiceError>((resolve) => {
      const call = client.engine.Invoke({ target: 'test@fail', data: Buffer.from('boom') });
      call.on('data', () => undefined);
      call.on('error', resolve);
    });
    expect(raw.details).toBe('handler says: boom');
    expect(raw.metadata.get(ERROR_CODE_TRAILER)).toEqual(['handler_error']);
  });

  it('timeout_ms and the gRPC deadline become the invocation deadline', async () => {
    const before = Date.now();
    const error = await failure(client.call('test@hang', '', { timeoutMs: 150 }));
    expect(error.status).toBe(status.DEADLINE_EXCEEDED);
    expect(error.code).toBe('deadline_exceeded');
    expect(Date.now() - before).toBeLessThan(1000);

    const withDeadline = await new Promise<{ deadline: number }>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const call = client.engine.Invoke({ target: 'test@headers', headers: { a: 'b' } }, { deadline: Date.now() + 5000 });
      call.on('data', (chunk: { data: Buffer }) => chunks.push(chunk.data));
      call.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
      call.on('error', reject);
    });
    expect(withDeadline.deadline).toBeGreaterThan(Date.now() + 3000);
    expect(withDeadline.deadline).toBeLessThanOrEqual(Date.now() + 5000);
    const headers = JSON.parse((await client.call('test@headers', '', { headers: { k: 'v' } })).toString());
    expect(headers).toEqual({ headers: { k: 'v' }, deadline: 0 });
  });

  it('a client cancelling Invoke cancels the invocation', async () => {
    const controller = new AbortController();
    const pending = collect(client.invoke('test@hang', '', { signal: controller.signal }));
    await waitUntil(() => facade.open.size > 0);
    const before = facade.cancelled.length;
    controller.abort();
    expect((await failure(pending)).code).toBe('cancelled');
    await waitUntil(() => facade.cancelled.length > before);
    expect(facade.open.size).toBe(0);
  });

  it('InvokeStream: header, then body chunks; half-close ends the body', async () => {
    async function* body() {
      for (const part of ['ab', 'cd', 'ef']) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        yield part;
      }
    }
    expect(Buffer.concat(await collect(client.invokeStream('test@echo', body()))).toString()).toBe('abcdef');
    const error = await new Promise<ServiceError>((resolve) => {
      const call = client.engine.InvokeStream();
      call.on('data', () => undefined);
      call.on('error', resolve);
      call.write({ data: Buffer.from('no header') });
    });
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect((await failure(collect(client.invokeStream('ghost@echo', ['x'])))).status).toBe(status.NOT_FOUND);
  });

  it('Session multiplexes 1,000 concurrent calls with interleaved ids', async () => {
    const session = client.session();
    const targets = ['test@echo', 'test@async-echo', 'test@chunks'];
    const calls = Array.from({ length: 1000 }, (_, i) => {
      const target = targets[i % 3];
      return session.call(target, target === 'test@chunks' ? String(i % 4) : `call ${i}`).then((chunks) => ({ i, target, chunks }));
    });
    for (const { i, target, chunks } of await Promise.all(calls)) {
      if (target === 'test@chunks') expect(chunks.map(String)).toEqual(Array.from({ length: i % 4 }, (_, n) => String(n)));
      else expect(Buffer.concat(chunks).toString()).toBe(`call ${i}`);
    }
    session.close();
  });

  it('Session: a single-chunk result is ONE frame with data and end; errors are frames; ids are independent', async () => {
    const frames: SessionFrameMessage[] = [];
    const stream = client.engine.Session();
    const ended = new Promise<void>((resolve) => stream.on('end', resolve));
    stream.on('data', (frame: SessionFrameMessage) => frames.push(frame));
    stream.write({ id: 1, invoke: { target: 'test@echo', headers: {}, timeoutMs: 0 }, data: Buffer.from('one'), end: true });
    stream.write({ id: 2, invoke: { target: 'test@chunks', headers: {}, timeoutMs: 0 } });
    stream.write({ id: 2, data: Buffer.from('3') });
    stream.write({ id: 2, end: true });
    stream.write({ id: 3, invoke: { target: 'ghost@echo', headers: {}, timeoutMs: 0 }, end: true });
    stream.write({ id: 4, invoke: { target: 'test@fail', headers: {}, timeoutMs: 0 }, data: Buffer.from('bad'), end: true });
    stream.write({ id: 5, invoke: { target: 'test@hang', headers: {}, timeoutMs: 100 }, end: true });
    stream.end();
    await ended;
    const byId = (id: number) => frames.filter((frame) => frame.id === id).map((f) => ({ data: f.data?.toString(), end: f.end, error: f.error?.code ?? null }));
    expect(byId(1)).toEqual([{ data: 'one', end: true, error: null }]);
    expect(byId(2)).toEqual([
      { data: '0', end: false, error: null },
      { data: '1', end: false, error: null },
      { data: '2', end: true, error: null },
    ]);
    expect(byId(3)).toEqual([{ data: '', end: false, error: 'app_not_found' }]);
    expect(frames.find((frame) => frame.id === 3)?.error?.status).toBe(status.NOT_FOUND);
    expect(byId(4)).toEqual([
      { data: 'partial', end: false, error: null },
      { data: '', end: false, error: 'handler_error' },
    ]);
    expect(frames.find((frame) => frame.id === 4 && frame.error)?.error).toMatchObject({ status: status.UNKNOWN, message: 'handler says: bad' });
    expect(byId(5)).toEqual([{ data: '', end: false, error: 'deadline_exceeded' }]);
  });

  it('Session: an error frame from the client cancels that call only; dropping the stream cancels the rest', async () => {
    const session = client.session();
    const controller = new AbortController();
    const before = facade.cancelled.length;
    const hung = session.call('test@hang', '', { signal: controller.signal });
    const survivors = [session.call('test@hang'), session.call('test@hang')];
    const quick = session.call('test@slow', '30');
    await waitUntil(() => facade.open.size >= 3);
    controller.abort();
    expect((await failure(hung)).code).toBe('cancelled');
    await waitUntil(() => facade.cancelled.length === before + 1);
    expect(Buffer.concat(await quick).toString()).toBe('30');
    session.cancel();
    for (const survivor of survivors) expect((await failure(survivor)).code).toBe('cancelled');
    await waitUntil(() => facade.cancelled.length === before + 3);
    expect(facade.open.size).toBe(0);
  });

  it('Enqueue and Status, with NOT_FOUND for unknown ids and apps', async () => {
    const { id, duplicate } = await client.enqueue('test@echo', 'queued', { id: 'my-id', maxAttempts: 3 });
    expect({ id, duplicate }).toEqual({ id: 'my-id', duplicate: false });
    expect((await client.enqueue('test@echo', 'again', { id: 'my-id' })).duplicate).toBe(true);
    const statusReply = await client.status('my-id');
    expect(statusReply).toMatchObject({ id: 'my-id', target: 'test@echo', state: 'COMPLETED', attempts: 1, maxAttempts: 3 });
    expect(statusReply.result.toString()).toBe('queued');
    const failed = await client.enqueue('test@fail', '');
    expect(await client.status(failed.id)).toMatchObject({ state: 'FAILED', lastError: 'boom' });
    expect((await client.deadLetters('test')).map((event) => event.id)).toEqual([failed.id]);
    expect((await client.redrive(failed.id)).state).toBe('PENDING');
    expect((await failure(client.status('nope'))).status).toBe(status.NOT_FOUND);
    expect((await failure(client.enqueue('ghost@echo', ''))).status).toBe(status.NOT_FOUND);
    expect((await failure(client.enqueue('bad target', ''))).status).toBe(status.INVALID_ARGUMENT);
  });

  it('EnqueueStream answers each event by seq; a refused event gets its own error, the others go through', async () => {
    const stream = client.enqueueStream();
    const replies = await Promise.allSettled(
      Array.from({ length: 3_000 }, (_, i) => {
        if (i === 7) return stream.enqueue('ghost@echo', 'x');
        if (i === 8) return stream.enqueue('bad target', 'x');
        return stream.enqueue('test@echo', `event ${i}`, { id: `stream-${i}` });
      }),
    );
    await stream.close();
    expect(replies[7]).toMatchObject({ status: 'rejected', reason: { status: status.NOT_FOUND, code: 'app_not_found' } });
    expect(replies[8]).toMatchObject({ status: 'rejected', reason: { status: status.INVALID_ARGUMENT } });
    const queued = replies.filter((reply) => reply.status === 'fulfilled');
    expect(queued).toHaveLength(2_998);
    expect(replies[2_999]).toEqual({ status: 'fulfilled', value: { id: 'stream-2999', duplicate: false } });
    expect(facade.events.get('stream-1500')?.result?.toString()).toBe('event 1500');
    await expect(stream.enqueue('test@echo', 'late')).rejects.toMatchObject({ code: 'cancelled' });
  });

  it('EnqueueStream stops reading at 1,024 events in flight and resumes as they are answered', async () => {
    let open!: () => void;
    facade.enqueueGate = new Promise<void>((resolve) => (open = resolve));
    const before = facade.enqueueCalls;
    const stream = client.enqueueStream();
    const all = Promise.all(Array.from({ length: 4_000 }, (_, i) => stream.enqueue('test@echo', 'x', { id: `window-${i}` })));
    await waitUntil(() => facade.enqueueCalls - before >= 1_024);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(facade.enqueueCalls - before).toBe(1_024);
    expect(stream.inFlight).toBe(4_000);
    facade.enqueueGate = undefined;
    open();
    expect((await all).map((reply) => reply.id)).toEqual(Array.from({ length: 4_000 }, (_, i) => `window-${i}`));
    expect(facade.enqueueCalls - before).toBe(4_000);
    await stream.close();
  });

  it('UploadApp streams the archive in chunks; a bad manifest or an oversized archive is INVALID_ARGUMENT', async () => {
    const archive = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < archive.length; i++) archive[i] = i % 251;
    const progress: number[] = [];
    const info = await client.uploadApp({ name: 'up', manifest: Buffer.from('plugin: node'), manifestFile: 'm.yaml', archive, onProgress: (sent) => progress.push(sent) });
    expect(info).toMatchObject({ name: 'up', plugin: 'node', entrypoint: 'index.js', state: 'running', size: archive.length, inRunlist: true });
    expect(JSON.parse(info.manifestJson).plugin).toBe('node');
    const received = facade.uploads.at(-1)!;
    expect(received.bytes.equals(archive)).toBe(true);
    expect(received.archive.sha256).toBe(createHash('sha256').update(archive).digest('hex'));
    expect(received.manifest?.toString()).toBe('plugin: node');
    expect(received.manifestFile).toBe('m.yaml');
    expect(received.profile).toBeUndefined();
    expect(progress.at(-1)).toBe(archive.length);
    expect(progress.length).toBe(4);
    const bad = await failure(client.uploadApp({ archive: Buffer.from('tiny') }));
    expect(bad).toMatchObject({ status: status.INVALID_ARGUMENT, code: 'invalid_manifest' });
    const huge = await failure(client.uploadApp({ name: 'huge', archive: Buffer.alloc(5 * 1024 * 1024) }));
    expect(huge).toMatchObject({ status: status.INVALID_ARGUMENT });
    expect(huge.message).toMatch(/upload limit/);
  });

  it('AppLogs streams the last lines and follows until the client cancels', async () => {
    const lines = await collect(client.appLogs('test', { lines: 3 }));
    expect(lines.map((line) => line.line)).toEqual(['line 0', 'line 1', 'line 2']);
    expect(lines[0]).toMatchObject({ workerId: 'w1', stream: 'stdout', timestampMs: 0 });
    const followed: string[] = [];
    for await (const line of client.appLogs('test', { lines: 1, follow: true })) {
      followed.push(line.line);
      if (followed.length === 4) break;
    }
    expect(followed).toEqual(['line 0', 'line 1', 'line 2', 'line 3']);
    await waitUntil(() => facade.logsAborted === 1);
    expect((await failure(collect(client.appLogs('ghost')))).status).toBe(status.NOT_FOUND);
  });

  it('maps the other Deploy rpcs', async () => {
    expect((await client.listApps()).map((app) => app.name)).toEqual(['test']);
    expect((await client.stopApp('test')).state).toBe('stopped');
    expect((await client.restartApp('test', 'small')).profile).toBe('small');
    expect((await failure(client.viewApp('ghost'))).status).toBe(status.NOT_FOUND);
    expect((await failure(client.viewApp(''))).status).toBe(status.INVALID_ARGUMENT);
    expect(JSON.parse((await client.uploadProfile('p', 'pool-limit: 3')).profileJson)).toEqual({ 'pool-limit': 3 });
    expect(await failure(client.uploadProfile('p', 'pool-limit: 0'))).toMatchObject({ status: status.INVALID_ARGUMENT, code: 'invalid_profile' });
    expect(await client.listProfiles()).toEqual(['default']);
    expect(await client.addToRunlist('other', 'p')).toEqual({ test: 'default', other: 'p' });
    expect(await client.viewRunlist()).toEqual({ test: 'default' });
    expect((await client.listCrashlogs('test'))[0]).toMatchObject({ id: 'c1', reason: 'exit 1', lines: [] });
    expect((await client.viewCrashlog('test', 'c1')).lines).toEqual(['a', 'b']);
    const info = await client.info({ cluster: true });
    expect(info.node?.apps[0]).toMatchObject({ name: 'test', poolSize: 1, counters: { completed: 1 } });
    expect(info.cluster.map((node) => node.nodeId)).toEqual(['n1', 'n2']);
    expect((await client.info()).cluster).toEqual([]);
  });

  it('serves the standard health service and server reflection', async () => {
    const health = ((loadPackageDefinition(loadSync(healthProtoPath(), { enums: String })).grpc as GrpcObject).health as GrpcObject).v1 as GrpcObject;
    const healthClient = new (health.Health as ServiceClientConstructor)(server.address, credentials.createInsecure());
    for (const service of ['', 'cocaine.v1.Engine', 'cocaine.v1.Deploy']) {
      const reply = await new Promise<{ status: string }>((resolve, reject) =>
        healthClient.Check({ service }, (error: Error | null, value: { status: string }) => (error ? reject(error) : resolve(value))),
      );
      expect(reply.status).toBe('SERVING');
    }
    healthClient.close();

    const reflectionProto = join(dirname(require.resolve('@grpc/reflection')), '../proto/grpc/reflection/v1/reflection.proto');
    const reflection = ((loadPackageDefinition(loadSync(reflectionProto)).grpc as GrpcObject).reflection as GrpcObject).v1 as GrpcObject;
    const reflectionClient = new (reflection.ServerReflection as ServiceClientConstructor)(server.address, credentials.createInsecure()) as Client &
      Record<string, any>;
    const services = await new Promise<string[]>((resolve, reject) => {
      const call = reflectionClient.ServerReflectionInfo();
      call.on('data', (reply: { listServicesResponse: { service: Array<{ name: string }> } }) => {
        resolve(reply.listServicesResponse.service.map((service) => service.name));
        call.end();
      });
      call.on('error', reject);
      call.write({ listServices: '' });
    });
    expect(services).toEqual(expect.arrayContaining(['cocaine.v1.Engine', 'cocaine.v1.Deploy']));
    reflectionClient.close();
  });
});

