/** A trace's spans as the tree of who caused what: parent span → the spans it caused. */
import type { Span } from './span.js';

export interface TraceNode {
  span: Span;
  /** Ordered by start, then span id. */
  children: TraceNode[];
  /**
   * Set on a span attached to the root because its parent is not among the trace's spans: the
   * parent was evicted or dropped, is recorded on a node whose spans this store does not see, is
   * not recorded yet, or the span is a second root (or in a parent cycle, which bad input can make).
   */
  orphan?: true;
}

export interface TraceTree {
  traceId: string;
  root: TraceNode;
  /** The caller's span the root continues (from the request's `traceparent`), when there was one. */
  remoteParentSpanId?: string;
  /** ms since the epoch: the root's start, which offsets in renderings are relative to. */
  start: number;
  /** ms since the epoch: the latest end of a finished span, when one has finished. */
  end?: number;
  spans: number;
  orphans: number;
  /** New spans the store dropped past its per-trace bound. */
  dropped: number;
}

const byStart = (a: Span, b: Span): number => a.start - b.start || (a.spanId < b.spanId ? -1 : a.spanId > b.spanId ? 1 : 0);

/**
 * Builds the tree of one trace's spans (of that trace id; others are ignored). The root is the
 * earliest span whose parent is not among them (the request's first step: its parent, if any, is
 * the remote caller's). Every other span without its parent here hangs under the root, flagged
 * `orphan`, with its own subtree. Undefined when there are no spans.
 */
export function buildTree(traceId: string, spans: readonly Span[], dropped = 0): TraceTree | undefined {
  const sorted = spans.filter((span) => span.traceId === traceId).sort(byStart);
  const byId = new Map<string, Span>();
  for (const span of sorted) if (!byId.has(span.spanId)) byId.set(span.spanId, span);
  const unique = [...byId.values()];
  if (unique.length === 0) return undefined;
  const children = new Map<string, Span[]>();
  for (const span of unique) {
    if (span.parentSpanId === undefined || !byId.has(span.parentSpanId) || span.parentSpanId === span.spanId) continue;
    const list = children.get(span.parentSpanId);
    if (list) list.push(span);
    else children.set(span.parentSpanId, [span]);
  }
  const rootSpan = unique.find((span) => span.parentSpanId === undefined || !byId.has(span.parentSpanId)) ?? unique[0]!;
  const visited = new Set<string>();
  // Iterative, so a deep chain of calls cannot overflow the stack.
  const grow = (top: Span): TraceNode => {
    const node: TraceNode = { span: top, children: [] };
    visited.add(top.spanId);
    const stack: TraceNode[] = [node];
    while (stack.length > 0) {
      const current = stack.pop()!;
      for (const child of children.get(current.span.spanId) ?? []) {
        if (visited.has(child.spanId)) continue;
        visited.add(child.spanId);
        const childNode: TraceNode = { span: child, children: [] };
        current.children.push(childNode);
        stack.push(childNode);
      }
    }
    return node;
  };
  const root = grow(rootSpan);
  let orphans = 0;
  for (const span of unique) {
    if (visited.has(span.spanId)) continue;
    const orphan = grow(span);
    orphan.orphan = true;
    root.children.push(orphan);
    orphans++;
  }
  root.children.sort((a, b) => byStart(a.span, b.span));
  const ends = unique.map((span) => span.end).filter((end): end is number => end !== undefined);
  const tree: TraceTree = { traceId, root, start: rootSpan.start, spans: unique.length, orphans, dropped };
  if (rootSpan.parentSpanId !== undefined && !byId.has(rootSpan.parentSpanId)) tree.remoteParentSpanId = rootSpan.parentSpanId;
  if (ends.length > 0) tree.end = ends.reduce((a, b) => Math.max(a, b));
  return tree;
}

export interface WalkStep {
  node: TraceNode;
  /** The root's is 0. */
  depth: number;
  /** The node is its parent's last child. */
  last: boolean;
  /**
   * `lastAt[k]` says whether the node's ancestor at depth k (1 ≤ k < depth) was its parent's last
   * child (what a tree drawing needs). Shared between steps: read it before the next one.
   */
  lastAt: readonly boolean[];
}

/** Every node of the tree, depth first (parents before children, children in order). */
export function* walkTree(tree: TraceTree): Generator<WalkStep> {
  const lastAt: boolean[] = [];
  const stack: Array<{ node: TraceNode; depth: number; last: boolean }> = [{ node: tree.root, depth: 0, last: true }];
  while (stack.length > 0) {
    const { node, depth, last } = stack.pop()!;
    lastAt.length = depth + 1;
    lastAt[depth] = last;
    yield { node, depth, last, lastAt };
    for (let i = node.children.length - 1; i >= 0; i--) stack.push({ node: node.children[i]!, depth: depth + 1, last: i === node.children.length - 1 });
  }
}
