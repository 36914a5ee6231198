/** Helpers of the trace wiring tests: raw gRPC calls that expose response metadata, and tree walks. */
import { Metadata, type Client } from '@grpc/grpc-js';
import { join } from 'node:path';
import { parseTraceparent, type Traceparent } from '../../engine/trace/context.js';
import type { RenderedSpan, RenderedTrace } from '../../engine/trace/render.js';

export const TRACE_APP_DIR = join(import.meta.dirname, 'fixtures', 'node-trace');

export interface RawReply {
  status: number;
  details: string;
  body: Buffer;
  initial?: Metadata;
  trailers: Metadata;
}

export function traceMetadataOf(traceparent?: string, tracestate?: string): Metadata {
  const metadata = new Metadata();
  if (traceparent) metadata.set('traceparent', traceparent);
  if (tracestate) metadata.set('tracestate', tracestate);
  return metadata;
}

/** Engine.Invoke with `metadata`; resolves with the status, body and both metadata sets. */
export function invokeRaw(engine: Client & Record<string, any>, request: { target: string; data?: Buffer; headers?: Record<string, string> }, metadata = new Metadata()): Promise<RawReply> {
  return new Promise((resolve) => {
    const call = engine.Invoke({ target: request.target, data: request.data ?? Buffer.alloc(0), headers: request.headers ?? {}, timeoutMs: 30_000 }, metadata);
    const chunks: Buffer[] = [];
    let initial: Metadata | undefined;
    call.on('metadata', (received: Metadata) => (initial = received));
    call.on('data', (chunk: { data: Buffer }) => chunks.push(chunk.data));
    call.on('error', () => undefined);
    call.on('status', (status: { code: number; details: string; metadata: Metadata }) =>
      resolve({ status: status.code, details: status.details, body: Buffer.concat(chunks), initial, trailers: status.metadata }),
    );
  });
}

/** Engine.Enqueue with `metadata`. */
export function enqueueRaw(engine: Client & Record<string, any>, request: { target: string; data?: Buffer; headers?: Record<string, string>; maxAttempts?: number }, metadata = new Metadata()): Promise<{ id: string; initial?: Metadata; trailers: Metadata }> {
  return new Promise((resolve, reject) => {
    let initial: Metadata | undefined;
    let reply: { id: string } | undefined;
    const call = engine.Enqueue(
      { target: request.target, data: request.data ?? Buffer.alloc(0), headers: request.headers ?? {}, maxAttempts: request.maxAttempts ?? 0, delayMs: 0, id: '' },
      metadata,
      (error: Error | null, value: { id: string }) => {
        if (error) reject(error);
        else reply = value;
      },
    );
    call.on('metadata', (received: Metadata) => (initial = received));
    call.on('status', (status: { metadata: Metadata }) => {
      // The callback runs before 'status'; give it the turn it may need.
      setImmediate(() => (reply ? resolve({ id: reply.id, initial, trailers: status.metadata }) : undefined));
    });
  });
}

/** The one traceparent of `metadata`, parsed (throws when absent or invalid). */
export function returnedTraceparent(metadata: Metadata | undefined): Traceparent {
  const values = metadata?.get('traceparent') ?? [];
  if (values.length !== 1) throw new Error(`expected one traceparent in the metadata, got ${values.length}`);
  const parsed = parseTraceparent(String(values[0]));
  if (!parsed.ok) throw new Error(`returned traceparent ${String(values[0])} is invalid: ${parsed.reason}`);
  return parsed.value;
}

export function parsed(traceparent: string | undefined): Traceparent {
  const result = parseTraceparent(traceparent ?? '');
  if (!result.ok) throw new Error(`traceparent ${traceparent} is invalid: ${result.reason}`);
  return result.value;
}

/** Every span of a rendered trace, depth first. */
export function allSpans(trace: RenderedTrace): RenderedSpan[] {
  const out: RenderedSpan[] = [];
  const visit = (span: RenderedSpan): void => {
    out.push(span);
    span.children.forEach(visit);
  };
  visit(trace.root);
  return out;
}
