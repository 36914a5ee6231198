/**
 * Deploy.Trace: one trace's spans from this node's trace store (docs/tracing.md). The id is read
 * with traceIdArgument (32 hex digits in either case, or a whole traceparent); an unknown or
 * expired trace answers NOT_FOUND (code not_found). Clients rebuild the tree with buildTree.
 */
import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import { EngineError } from '../errors/index.js';
import { traceIdArgument } from '../trace/context.js';
import type { Span, SpanKind } from '../trace/span.js';
import type { TraceNode, TraceTree } from '../trace/tree.js';
import type { EngineFacade } from './facade.js';
import { statusFromError } from './status.js';

export interface TraceRequestMessage {
  traceId: string;
}

export interface TraceSpanMessage {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  kind: string;
  target: string;
  node: string;
  worker: string;
  startMs: number;
  endMs: number;
  outcome: string;
  errorCode: string;
  errorMessage: string;
  attempt: number;
  eventId: string;
}

export interface TraceReplyMessage {
  traceId: string;
  spans: TraceSpanMessage[];
  dropped: number;
}

export function traceSpanMessage(span: Span): TraceSpanMessage {
  const outcome = span.outcome;
  return {
    traceId: span.traceId,
    spanId: span.spanId,
    parentSpanId: span.parentSpanId ?? '',
    kind: span.kind,
    target: span.target,
    node: span.node,
    worker: span.worker ?? '',
    startMs: span.start,
    endMs: span.end ?? 0,
    outcome: outcome?.status ?? '',
    errorCode: outcome?.status === 'error' ? outcome.code : '',
    errorMessage: outcome?.status === 'error' ? outcome.message : '',
    attempt: span.attempt ?? 0,
    eventId: span.eventId ?? '',
  };
}

/** The reverse (client side): a TraceSpan message → a Span for buildTree. */
export function spanOfMessage(message: TraceSpanMessage): Span {
  const span: Span = { traceId: message.traceId, spanId: message.spanId, kind: message.kind as SpanKind, target: message.target, node: message.node, start: Number(message.startMs) };
  if (message.parentSpanId) span.parentSpanId = message.parentSpanId;
  if (message.worker) span.worker = message.worker;
  if (Number(message.endMs) > 0) span.end = Number(message.endMs);
  if (message.outcome === 'ok') span.outcome = { status: 'ok' };
  else if (message.outcome === 'error') span.outcome = { status: 'error', code: message.errorCode, message: message.errorMessage };
  if (message.attempt > 0) span.attempt = message.attempt;
  if (message.eventId) span.eventId = message.eventId;
  return span;
}

function treeSpans(tree: TraceTree): Span[] {
  const spans: Span[] = [];
  const visit = (node: TraceNode): void => {
    spans.push(node.span);
    for (const child of node.children) visit(child);
  };
  visit(tree.root);
  return spans.sort((a, b) => a.start - b.start || (a.spanId < b.spanId ? -1 : a.spanId > b.spanId ? 1 : 0));
}

export function traceService(facade: EngineFacade): UntypedServiceImplementation {
  return {
    Trace(call: ServerUnaryCall<TraceRequestMessage, TraceReplyMessage>, callback: sendUnaryData<TraceReplyMessage>) {
      let traceId: string;
      try {
        traceId = traceIdArgument(call.request.traceId);
      } catch (error) {
        callback(statusFromError(error));
        return;
      }
      const traces = facade.traces;
      if (!traces) {
        callback(statusFromError(new EngineError('internal', 'this engine records no traces')));
        return;
      }
      traces.tree(traceId).then(
        (tree) => callback(null, { traceId: tree.traceId, spans: treeSpans(tree).map(traceSpanMessage), dropped: tree.dropped }),
        (error: unknown) => callback(statusFromError(error)),
      );
    },
  };
}
