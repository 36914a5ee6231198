/**
 * gRPC throughput/latency measurements: a bare grpc-js echo (in a child process, as our engine
 * runs out of process) and the same client patterns against a running engine's Engine service.
 * Closed loop: `inFlight` calls outstanding at all times for `durationMs` after a short warm-up.
 */
import { spawn } from 'node:child_process';
import { credentials, type Client, type ClientDuplexStream } from '@grpc/grpc-js';
import { SessionClient } from '../engine/api/session-client.js';
import { cocaineProto } from '../engine/api/proto.js';
import type { ChunkMessage, SessionFrameMessage } from '../engine/api/messages.js';
import { distPath } from '../engine/util/paths.js';
import { bareEchoService } from './bare-echo.js';

export interface MeasureOptions {
  inFlight: number;
  durationMs: number;
  /** Warm-up before measuring (default min(500, durationMs / 4)). */
  warmupMs?: number;
  /** Request body (default 16 bytes). */
  payload?: Buffer;
}

export interface Measurement {
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

type AnyClient = Client & Record<string, any>;
type CallOnce = () => Promise<void>;

const DEFAULT_PAYLOAD = Buffer.from('0123456789abcdef');
const CHANNEL_OPTIONS = { 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 };

function quantile(sorted: Float64Array, q: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Runs `inFlight` loops of `callOnce` and measures the calls finishing inside the window. */
async function closedLoop(callOnce: CallOnce, options: MeasureOptions): Promise<Measurement> {
  const warmupMs = options.warmupMs ?? Math.min(500, options.durationMs / 4);
  const startAt = performance.now() + warmupMs;
  const endAt = startAt + options.durationMs;
  const latencies: number[] = [];
  let completed = 0;
  const loop = async (): Promise<void> => {
    for (;;) {
      const began = performance.now();
      if (began >= endAt) return;
      await callOnce();
      const finished = performance.now();
      if (began >= startAt && finished <= endAt) {
        completed++;
        latencies.push(finished - began);
      }
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, loop));
  const sorted = Float64Array.from(latencies).sort();
  return { callsPerSecond: completed / (options.durationMs / 1000), p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99) };
}

function serverStreamCall(client: AnyClient, method: string, request: object): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = client[method](request);
    call.on('data', (_chunk: ChunkMessage) => undefined);
    call.on('end', resolve);
    call.on('error', reject);
  });
}

export interface BareEchoServer {
  address: string;
  stop(): Promise<void>;
}

/** Spawns dist/bench/bare-echo-server.js and waits until it listens. */
export async function startBareEchoServer(): Promise<BareEchoServer> {
  const child = spawn(process.execPath, [distPath('bench/bare-echo-server.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const address = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    child.stdout!.on('data', (data: Buffer) => {
      buffer += data.toString();
      const match = /listening on (\S+)/.exec(buffer);
      if (match) resolve(match[1]);
    });
    void exited.then(() => reject(new Error('bare echo server exited before listening')));
  });
  return {
    address,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs `fn` with a BareEcho client of `address`, or of a bare server started for the occasion. */
async function withBareClient<T>(address: string | undefined, fn: (client: AnyClient) => Promise<T>): Promise<T> {
  const server = address ? undefined : await startBareEchoServer();
  const client = new (bareEchoService())(address ?? server!.address, credentials.createInsecure(), CHANNEL_OPTIONS) as AnyClient;
  try {
    return await fn(client);
  } finally {
    client.close();
    await server?.stop();
  }
}

/** Bare grpc-js unary echo (true unary rpc). */
export function measureBareUnary(options: MeasureOptions, address?: string): Promise<Measurement> {
  const request = { target: 'bare@echo', data: options.payload ?? DEFAULT_PAYLOAD };
  return withBareClient(address, (client) =>
    closedLoop(() => new Promise<void>((resolve, reject) => client.Unary(request, (error: Error | null) => (error ? reject(error) : resolve()))), options),
  );
}

/** Bare grpc-js server-streaming echo: one chunk then OK, the shape of Engine.Invoke. */
export function measureBareServerStream(options: MeasureOptions, address?: string): Promise<Measurement> {
  const request = { target: 'bare@echo', data: options.payload ?? DEFAULT_PAYLOAD };
  return withBareClient(address, (client) => closedLoop(() => serverStreamCall(client, 'Invoke', request), options));
}

/** Bare grpc-js bidi echo multiplexed by id, driven by the same SessionClient as ours. */
export function measureBareSession(options: MeasureOptions, address?: string): Promise<Measurement> {
  const payload = options.payload ?? DEFAULT_PAYLOAD;
  return withBareClient(address, async (client) => {
    const session = new SessionClient(client.Session() as ClientDuplexStream<SessionFrameMessage, SessionFrameMessage>);
    try {
      return await closedLoop(async () => void (await session.call('bare@echo', payload)), options);
    } finally {
      session.close();
    }
  });
}

/** Engine.Invoke against a running engine (`target` must be warm-able, e.g. an echo app). */
export async function measureInvoke(address: string, target: string, options: MeasureOptions): Promise<Measurement> {
  const client = new (cocaineProto().Engine)(address, credentials.createInsecure(), CHANNEL_OPTIONS) as AnyClient;
  const request = { target, data: options.payload ?? DEFAULT_PAYLOAD, headers: {}, timeoutMs: 0 };
  try {
    await serverStreamCall(client, 'Invoke', request);
    return await closedLoop(() => serverStreamCall(client, 'Invoke', request), options);
  } finally {
    client.close();
  }
}

/** Engine.Session against a running engine. */
export async function measureSession(address: string, target: string, options: MeasureOptions): Promise<Measurement> {
  const client = new (cocaineProto().Engine)(address, credentials.createInsecure(), CHANNEL_OPTIONS) as AnyClient;
  const session = new SessionClient(client.Session());
  const payload = options.payload ?? DEFAULT_PAYLOAD;
  try {
    await session.call(target, payload);
    return await closedLoop(async () => void (await session.call(target, payload)), options);
  } finally {
    session.close();
    client.close();
  }
}
