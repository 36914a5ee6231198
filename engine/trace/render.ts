/** A trace tree for people (`cocaine-deploy trace ID`) and for programs (`--json`). */
import { spanDuration, type Span } from './span.js';
import { walkTree, type TraceNode, type TraceTree } from './tree.js';

/** One span in the JSON rendering: times as offsets from the root's start, children nested. */
export interface RenderedSpan {
  spanId: string;
  parentSpanId?: string;
  kind: Span['kind'];
  target: string;
  node: string;
  worker?: string;
  /** ms from the root's start (negative for a span another node's clock put earlier). */
  offsetMs: number;
  /** ms the step took; absent while it runs. */
  durationMs?: number;
  outcome: 'ok' | 'running' | { code: string; message: string };
  attempt?: number;
  eventId?: string;
  /** Its parent is not in the trace (see TraceNode.orphan). */
  orphan?: true;
  children: RenderedSpan[];
}

export interface RenderedTrace {
  traceId: string;
  remoteParentSpanId?: string;
  /** The root's start, ISO 8601. */
  start: string;
  /** From the root's start to the latest end, when a span has ended. */
  durationMs?: number;
  spans: number;
  orphans: number;
  dropped: number;
  root: RenderedSpan;
}

/** The tree as a JSON-ready object (`JSON.stringify(renderTraceJson(tree), null, 2)` for the CLI). */
export function renderTraceJson(tree: TraceTree): RenderedTrace {
  const rendered: RenderedTrace = {
    traceId: tree.traceId,
    start: new Date(tree.start).toISOString(),
    spans: tree.spans,
    orphans: tree.orphans,
    dropped: tree.dropped,
    root: renderNode(tree.root, tree.start),
  };
  if (tree.remoteParentSpanId !== undefined) rendered.remoteParentSpanId = tree.remoteParentSpanId;
  if (tree.end !== undefined) rendered.durationMs = tree.end - tree.start;
  return rendered;
}

function renderNode(top: TraceNode, origin: number): RenderedSpan {
  // Iterative like buildTree: a long chain renders without deep recursion.
  const convert = (node: TraceNode): RenderedSpan => {
    const { span } = node;
    const out: RenderedSpan = { spanId: span.spanId, kind: span.kind, target: span.target, node: span.node, offsetMs: span.start - origin, outcome: outcomeOf(span), children: [] };
    if (span.parentSpanId !== undefined) out.parentSpanId = span.parentSpanId;
    if (span.worker !== undefined) out.worker = span.worker;
    const duration = spanDuration(span);
    if (duration !== undefined) out.durationMs = duration;
    if (span.attempt !== undefined) out.attempt = span.attempt;
    if (span.eventId !== undefined) out.eventId = span.eventId;
    if (node.orphan) out.orphan = true;
    return out;
  };
  const root = convert(top);
  const stack: Array<[TraceNode, RenderedSpan]> = [[top, root]];
  while (stack.length > 0) {
    const [node, out] = stack.pop()!;
    for (const child of node.children) {
      const converted = convert(child);
      out.children.push(converted);
      stack.push([child, converted]);
    }
  }
  return root;
}

function outcomeOf(span: Span): RenderedSpan['outcome'] {
  if (!span.outcome) return 'running';
  return span.outcome.status === 'ok' ? 'ok' : { code: span.outcome.code, message: span.outcome.message };
}

const ms = (value: number): string => (Math.abs(value) >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`);

/** One line per span: an indented tree with kind, target, offset from the root's start, duration, outcome and node. */
export function renderTraceText(tree: TraceTree): string {
  const total = tree.end === undefined ? 'running' : ms(tree.end - tree.start);
  const lines = [`trace ${tree.traceId}  started ${new Date(tree.start).toISOString()}  ${tree.spans} span${tree.spans === 1 ? '' : 's'}  total ${total}`];
  if (tree.remoteParentSpanId !== undefined) lines.push(`  continues the caller's span ${tree.remoteParentSpanId}`);
  for (const { node, depth, last, lastAt } of walkTree(tree)) {
    let indent = '';
    for (let k = 1; k < depth; k++) indent += lastAt[k] ? '   ' : '│  ';
    if (depth > 0) indent += last ? '└─ ' : '├─ ';
    lines.push(`${indent}${spanLine(node, tree.start)}`);
  }
  if (tree.orphans > 0) lines.push(`${tree.orphans} span${tree.orphans === 1 ? '' : 's'} (marked "orphan") whose parent is not in the trace shown under the root`);
  if (tree.dropped > 0) lines.push(`${tree.dropped} span${tree.dropped === 1 ? '' : 's'} dropped past the per-trace bound`);
  return lines.join('\n');
}

function spanLine(node: TraceNode, origin: number): string {
  const { span } = node;
  const offset = span.start - origin;
  const duration = spanDuration(span);
  const parts = [span.kind, span.target, `+${ms(offset)}`.replace('+-', '-'), duration === undefined ? 'running' : ms(duration)];
  if (span.outcome) parts.push(span.outcome.status === 'ok' ? 'ok' : `error ${span.outcome.code}: ${oneLine(span.outcome.message)}`);
  const where = [`node ${span.node}`];
  if (span.worker !== undefined) where.push(`worker ${span.worker}`);
  if (span.eventId !== undefined) where.push(`event ${span.eventId}`);
  if (span.attempt !== undefined) where.push(`attempt ${span.attempt}`);
  const line = `${parts.join('  ')}  (${where.join(', ')})`;
  return node.orphan ? `${line}  [orphan: parent ${span.parentSpanId ?? 'none'} not in trace]` : line;
}

const oneLine = (text: string): string => text.replace(/\s+/g, ' ').trim();
