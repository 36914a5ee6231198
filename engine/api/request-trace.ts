/**
 * The trace context of a gRPC request (docs/tracing.md): continued from the call's metadata
 * `traceparent`/`tracestate`, else from the request's own headers map, else a new trace; returned
 * in the response's initial metadata and again in its trailers.
 */
import { Metadata } from '@grpc/grpc-js';
import { continueTrace, traceHeaders, TRACEPARENT, type HeaderCarrier, type HeaderValue } from '../trace/context.js';
import type { EngineTraces } from '../trace/engine-traces.js';
import type { SpanStart } from '../trace/span.js';
import type { ActiveSpan } from '../trace/tracer.js';

/** Where a request's trace headers are read: the call's metadata first, then the request's headers map. */
export function traceCarrier(metadata: Metadata | undefined, headers: unknown): HeaderCarrier {
  if (metadata && metadata.get(TRACEPARENT).length > 0) return (name: string) => metadata.get(name) as HeaderValue;
  if (headers !== null && typeof headers === 'object') return headers as Record<string, string>;
  return {};
}

/** Begins the engine's span of a request, or undefined when the facade has no tracing. */
export function beginRequestTrace(traces: EngineTraces | undefined, carrier: HeaderCarrier, fields: Omit<SpanStart, 'node'>): ActiveSpan | undefined {
  if (!traces) return undefined;
  return traces.tracer.begin(continueTrace(carrier).context, fields);
}

/** `traceparent` (and `tracestate`) of the engine's span, as gRPC metadata. */
export function traceMetadata(active: ActiveSpan | undefined): Metadata | undefined {
  if (!active) return undefined;
  const metadata = new Metadata();
  for (const [name, value] of Object.entries(traceHeaders(active.context))) if (value !== undefined) metadata.set(name, value);
  return metadata;
}

/** A status object (statusFromError) carrying the trace trailers too. */
export function withTrailers<T extends { metadata: Metadata }>(status: T, trailers: Metadata | undefined): T {
  if (trailers) status.metadata.merge(trailers);
  return status;
}
