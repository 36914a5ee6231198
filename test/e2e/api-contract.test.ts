/**
 * The gRPC contract as generic clients meet it, against a real engine: results of any size reach
 * clients with the default 4 MiB receive limit (grpc-js and, when installed, python3-grpcio),
 * reflection lists the health service, the health names report, the Session id rules, and a
 * gRPC deadline past 2^31-1 ms.
 */
import { credentials, loadPackageDefinition, type Client, type GrpcObject, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_RESULT_MESSAGE_BYTES } from '../../engine/api/call-utils.js';
import { connect, type EngineClient } from '../../engine/api/client.js';
import { HEALTH_SERVICES } from '../../engine/api/grpc-server.js';
import type { ChunkMessage, SessionFrameMessage } from '../../engine/api/messages.js';
import { cocaineProto } from '../../engine/api/proto.js';
import { errorFromStatus } from '../../engine/api/status.js';
import { headers as natsHeaders, connect as natsConnect } from '@nats-io/transport-node';
import { EXAMPLES, cliJson, startEngine, tempDir, type RunningEngine } from '../helpers/engine.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';

const require = createRequire(import.meta.url);
const BIG = 6 * 1024 * 1024;
const DEFAULT_RECEIVE_LIMIT = 4 * 1024 * 1024;
const THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000;

/** A python3 with grpcio (the Debian package python3-grpcio installs into /usr/bin/python3). */
const python = ['python3', '/usr/bin/python3'].find((binary) => spawnSync(binary, ['-c', 'import grpc'], { stdio: 'ignore' }).status === 0);

function expectedBig(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = i % 251;
  return out;
}

type Raw = Client & Record<string, any>;

/** A grpc-js client with every channel option at its default (4 MiB receive limit). */
function defaultClient(address: string): Raw {
  const { Engine } = cocaineProto();
  return new Engine(address, credentials.createInsecure()) as Raw;
}

function readAll<M>(call: AsyncIterable<M>): Promise<M[]> {
  return (async () => {
    const messages: M[] = [];
    for await (const message of call) messages.push(message);
    return messages;
  })();
}

/** Opens a raw Session stream; frames are collected until the server ends it. */
function rawSession(client: Raw) {
  const call = client.Session();
  const frames: SessionFrameMessage[] = [];
  const done = new Promise<SessionFrameMessage[]>((resolve, reject) => {
    call.on('data', (frame: SessionFrameMessage) => frames.push(frame));
    call.on('end', () => resolve(frames));
    call.on('error', (error: ServiceError) => reject(errorFromStatus(error)));
  });
  return { call, frames, done };
}

describe('the gRPC contract with default clients', () => {
  let nats: NatsServer;
  let engine: RunningEngine;
  let client: EngineClient;
  let plain: Raw;
  const work = tempDir('api-contract');

  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: false });
    engine = await startEngine({ args: ['--nats', nats.url] });
    client = connect(engine.address);
    plain = defaultClient(engine.address);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-conformance')]);
  });

  afterAll(async () => {
    plain?.close();
    client?.close();
    await engine?.stop();
    await nats?.stop();
  });

  it('a 6 MiB result reaches a default grpc-js client over Invoke, InvokeStream and Session, in messages of at most 1 MiB', async () => {
    const want = expectedBig(BIG);
    const chunks = await readAll<ChunkMessage>(plain.Invoke({ target: 'node-conformance@big', data: Buffer.from(String(BIG)), headers: {}, timeoutMs: 60_000 }));
    expect(Buffer.concat(chunks.map((chunk) => chunk.data)).equals(want)).toBe(true);
    expect(Math.max(...chunks.map((chunk) => chunk.data.length))).toBeLessThanOrEqual(MAX_RESULT_MESSAGE_BYTES);

    const stream = plain.InvokeStream();
    stream.write({ header: { target: 'node-conformance@big', headers: {}, timeoutMs: 60_000 } });
    stream.write({ data: Buffer.from(String(BIG)) });
    stream.end();
    const streamed = await readAll<ChunkMessage>(stream);
    expect(Buffer.concat(streamed.map((chunk) => chunk.data)).equals(want)).toBe(true);

    const session = rawSession(plain);
    session.call.write({ id: 1, invoke: { target: 'node-conformance@big', headers: {}, timeoutMs: 60_000 }, data: Buffer.from(String(BIG)), end: true });
    session.call.end();
    const frames = await session.done;
    expect(frames.length).toBeGreaterThanOrEqual(BIG / MAX_RESULT_MESSAGE_BYTES);
    expect(frames.every((frame) => frame.id === 1 && !frame.error && (frame.data?.length ?? 0) <= MAX_RESULT_MESSAGE_BYTES)).toBe(true);
    expect(frames.filter((frame) => frame.end)).toHaveLength(1);
    expect(frames.at(-1)?.end).toBe(true);
    expect(Buffer.concat(frames.map((frame) => frame.data ?? Buffer.alloc(0))).equals(want)).toBe(true);
  });

  // scripts/test-deps.sh (npm test's pretest) installs python3-grpcio.
  it('a 6 MiB result reaches a default python3-grpcio client (Invoke and Session)', () => {
    if (!python) throw new Error('python3-grpcio is not installed (scripts/test-deps.sh installs it)');
    const proto = cocaineProto().engineService;
    const script = join(work, 'client.py');
    writeFileSync(
      script,
      [
        'import grpc, struct, sys',
        'address, method, request, out = sys.argv[1:5]',
        'channel = grpc.insecure_channel(address)  # default options: 4 MiB receive limit',
        'body = bytes.fromhex(request)',
        'try:',
        "    if method == 'Invoke':",
        "        replies = channel.unary_stream('/cocaine.v1.Engine/Invoke')(body, timeout=120)",
        '    else:',
        "        replies = channel.stream_stream('/cocaine.v1.Engine/Session')(iter([body]), timeout=120)",
        "    with open(out, 'wb') as f:",
        '        for reply in replies:',
        "            f.write(struct.pack('>I', len(reply)) + reply)",
        "    print('ok')",
        'except grpc.RpcError as error:',
        "    print('error', error.code().name, error.details())",
      ].join('\n'),
    );
    const run = (method: 'Invoke' | 'Session', request: Buffer): Buffer[] => {
      const out = join(work, `${method}.bin`);
      const result = spawnSync(python!, [script, engine.address, method, request.toString('hex'), out], { encoding: 'utf8', timeout: 120_000 });
      expect(result.stdout.trim(), result.stderr).toBe('ok');
      const bytes = readFileSync(out);
      const messages: Buffer[] = [];
      for (let offset = 0; offset < bytes.length; ) {
        const length = bytes.readUInt32BE(offset);
        messages.push(bytes.subarray(offset + 4, offset + 4 + length));
        offset += 4 + length;
      }
      return messages;
    };
    const want = expectedBig(BIG);
    const invoke = run('Invoke', proto.Invoke.requestSerialize({ target: 'node-conformance@big', data: Buffer.from(String(BIG)), timeoutMs: 60_000 }));
    expect(Math.max(...invoke.map((message) => message.length))).toBeLessThan(DEFAULT_RECEIVE_LIMIT);
    const chunks = invoke.map((message) => proto.Invoke.responseDeserialize(message) as ChunkMessage);
    expect(Buffer.concat(chunks.map((chunk) => chunk.data)).equals(want)).toBe(true);
    const session = run('Session', proto.Session.requestSerialize({ id: 9, invoke: { target: 'node-conformance@big', timeoutMs: 60_000 }, data: Buffer.from(String(BIG)), end: true }));
    const frames = session.map((message) => proto.Session.responseDeserialize(message) as SessionFrameMessage);
    expect(frames.at(-1)?.end).toBe(true);
    expect(Buffer.concat(frames.map((frame) => frame.data ?? Buffer.alloc(0))).equals(want)).toBe(true);
  });

  it("a 3 MiB result over NATS request-reply comes in chunks within the server's max_payload", async () => {
    const nc = await natsConnect({ servers: nats.url });
    try {
      const h = natsHeaders();
      h.set('Cocaine-Event', 'big');
      const size = 3 * 1024 * 1024;
      const replies = await nc.requestMany('cocaine.invoke.node-conformance', String(size), { headers: h, strategy: 'sentinel', maxWait: 60_000 } as never);
      const chunks: Buffer[] = [];
      let status = '';
      for await (const msg of replies) {
        if (msg.data.length > 0) chunks.push(Buffer.from(msg.data));
        else status = `${msg.headers?.get('Cocaine-Status')} ${msg.headers?.get('Cocaine-Error-Message') ?? ''}`.trim();
      }
      expect(status).toBe('ok');
      expect(Math.max(...chunks.map((chunk) => chunk.length))).toBeLessThanOrEqual(nc.info!.max_payload);
      expect(Buffer.concat(chunks).equals(expectedBig(size))).toBe(true);
    } finally {
      await nc.close();
    }
  });

  it("the TypeScript client calls grpc-js's own 'message larger than max' message_too_large, not queue_full", async () => {
    const small = connect(engine.address, { maxMessageBytes: 64 * 1024 });
    try {
      const error = (await small.call('node-conformance@big', String(512 * 1024)).catch((failure: unknown) => failure)) as { code: string; status: number; message: string };
      expect(error.status).toBe(8);
      expect(error.code).toBe('message_too_large');
      expect(error.message).toMatch(/larger than max.*size limit/);
      // The other direction: the engine refuses a request larger than its limit (64 MiB by default).
      const huge = (await small.call('node-conformance@echo', Buffer.alloc(128 * 1024)).catch((failure: unknown) => failure)) as { code: string };
      expect(huge.code).toBe('message_too_large');
    } finally {
      small.close();
    }
  });

  it('server reflection lists grpc.health.v1.Health and describes it; every documented health name reports SERVING', async () => {
    const reflectionProto = join(dirname(require.resolve('@grpc/reflection')), '../proto/grpc/reflection/v1/reflection.proto');
    const reflection = ((loadPackageDefinition(loadSync(reflectionProto)).grpc as GrpcObject).reflection as GrpcObject).v1 as GrpcObject;
    const reflectionClient = new (reflection.ServerReflection as ServiceClientConstructor)(engine.address, credentials.createInsecure()) as Raw;
    const ask = (request: object) =>
      new Promise<Record<string, any>>((resolve, reject) => {
        const call = reflectionClient.ServerReflectionInfo();
        call.on('data', (reply: Record<string, any>) => {
          resolve(reply);
          call.end();
        });
        call.on('error', reject);
        call.write(request);
      });
    try {
      const listed = await ask({ listServices: '' });
      const names = (listed.listServicesResponse.service as Array<{ name: string }>).map((service) => service.name);
      expect(names).toEqual(expect.arrayContaining(['cocaine.v1.Engine', 'cocaine.v1.Deploy', 'grpc.health.v1.Health']));
      const described = await ask({ fileContainingSymbol: 'grpc.health.v1.Health' });
      expect(described.errorResponse ?? null).toBeNull();
      expect(described.fileDescriptorResponse.fileDescriptorProto.length).toBeGreaterThan(0);
    } finally {
      reflectionClient.close();
    }

    const healthPath = join(dirname(require.resolve('grpc-health-check/package.json')), 'proto/health/v1/health.proto');
    const health = ((loadPackageDefinition(loadSync(healthPath, { enums: String })).grpc as GrpcObject).health as GrpcObject).v1 as GrpcObject;
    const healthClient = new (health.Health as ServiceClientConstructor)(engine.address, credentials.createInsecure()) as Raw;
    const check = (service: string) =>
      new Promise<string>((resolve) => healthClient.Check({ service }, (error: ServiceError | null, reply: { status: string }) => resolve(error ? `error ${error.code}` : reply.status)));
    try {
      expect(HEALTH_SERVICES).toEqual(['', 'cocaine.v1.Engine', 'cocaine.v1.Deploy']);
      for (const name of HEALTH_SERVICES) expect(await check(name)).toBe('SERVING');
      expect(await check('cocaine.v1.Nope')).toBe('error 5');
    } finally {
      healthClient.close();
    }
  });

  it('Session: an invoke on an open id is refused with session_id_in_use, and the open call goes on undisturbed', async () => {
    const session = rawSession(plain);
    session.call.write({ id: 7, invoke: { target: 'node-conformance@sleep', headers: {}, timeoutMs: 30_000 }, data: Buffer.from('600'), end: true });
    session.call.write({ id: 7, invoke: { target: 'node-conformance@echo', headers: {}, timeoutMs: 0 }, data: Buffer.from('second'), end: true });
    session.call.write({ id: 8, invoke: { target: 'node-conformance@echo', headers: {}, timeoutMs: 0 }, data: Buffer.from('other'), end: true });
    session.call.end();
    const frames = await session.done;
    const onSeven = frames.filter((frame) => frame.id === 7);
    expect(onSeven[0].error).toMatchObject({ status: 6, code: 'session_id_in_use' });
    const rest = onSeven.slice(1);
    expect(rest.some((frame) => frame.error)).toBe(false);
    expect(Buffer.concat(rest.map((frame) => frame.data ?? Buffer.alloc(0))).toString()).toBe('slept');
    expect(rest.at(-1)?.end).toBe(true);
    expect(Buffer.concat(frames.filter((frame) => frame.id === 8).map((frame) => frame.data ?? Buffer.alloc(0))).toString()).toBe('other');
  });

  it('Session: end rides with the invoke; frames for unknown ids are dropped; a cancelled call gets no reply frame', async () => {
    const session = rawSession(plain);
    session.call.write({ id: 40, data: Buffer.from('nobody'), end: true });
    session.call.write({ id: 41, invoke: { target: 'node-conformance@sleep', headers: {}, timeoutMs: 30_000 }, data: Buffer.from('20000'), end: true });
    session.call.write({ id: 42, invoke: { target: 'node-conformance@echo', headers: {}, timeoutMs: 0 }, data: Buffer.from('one frame'), end: true });
    // Cancel 41 once 42 is answered (so 41 has surely started).
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (session.frames.some((frame) => frame.id === 42 && frame.end)) {
          clearInterval(poll);
          resolve();
        }
      }, 10);
    });
    session.call.write({ id: 41, error: { status: 1, code: 'cancelled', message: 'changed my mind' } });
    session.call.end();
    const started = Date.now();
    const frames = await session.done;
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(frames.filter((frame) => frame.id === 40 || frame.id === 41)).toEqual([]);
    expect(frames.filter((frame) => frame.id === 42)).toEqual([expect.objectContaining({ id: 42, end: true, data: Buffer.from('one frame') })]);
  });

  it('a gRPC deadline 30 days away (past 2^31-1 ms) does not expire at once', async () => {
    const call = plain.Invoke({ target: 'node-conformance@echo', data: Buffer.from('later'), headers: {}, timeoutMs: 0 }, { deadline: Date.now() + THIRTY_DAYS_MS });
    const chunks = await readAll<ChunkMessage>(call).catch((error: ServiceError) => {
      throw errorFromStatus(error);
    });
    expect(Buffer.concat(chunks.map((chunk) => chunk.data)).toString()).toBe('later');
    // And through the TypeScript client, whose deadline rides as timeout_ms too.
    expect((await client.call('node-conformance@echo', 'later too', { timeoutMs: THIRTY_DAYS_MS })).toString()).toBe('later too');
  });
});
