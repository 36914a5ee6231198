import { describe, expect, it } from 'vitest';
import { buildTree, walkTree } from '../../engine/trace/tree.js';
import { request, span } from './spans.js';

describe('buildTree', () => {
  it('nests spans under their parents, children ordered by start; the root continues the remote caller', () => {
    const remote = request();
    const { child } = remote;
    const invoke = child(); // the engine's first step, caused by the caller's span
    const callB = child(invoke);
    const callC = child(invoke);
    const emitD = child(callB);
    const spans = [
      span(emitD, { kind: 'emit', start: 130, end: 131 }),
      span(callC, { start: 120, end: 160 }),
      span(invoke, { kind: 'invoke', start: 100, end: 200 }),
      span(callB, { start: 110, end: 150 }),
    ];
    const tree = buildTree(remote.root.traceId, spans)!;
    expect(tree).toMatchObject({ traceId: remote.root.traceId, start: 100, end: 200, spans: 4, orphans: 0, dropped: 0, remoteParentSpanId: remote.root.spanId });
    expect(tree.root.span.spanId).toBe(invoke.spanId);
    expect(tree.root.children.map((node) => node.span.spanId)).toEqual([callB.spanId, callC.spanId]);
    expect(tree.root.children[0]!.children.map((node) => node.span.spanId)).toEqual([emitD.spanId]);
    expect([...walkTree(tree)].map(({ node, depth }) => [node.span.spanId, depth])).toEqual([
      [invoke.spanId, 0],
      [callB.spanId, 1],
      [emitD.spanId, 2],
      [callC.spanId, 1],
    ]);
  });

  it('hangs spans whose parent is missing under the root, flagged orphan, with their subtrees', () => {
    const { root, child } = request();
    const lost = child(); // its span was evicted or lives on a node this store does not see
    const orphan = child(lost);
    const underOrphan = child(orphan);
    const spans = [span(root, { kind: 'invoke', start: 0, end: 50 }), span(orphan, { start: 10, end: 20, node: 'node-b' }), span(underOrphan, { start: 12 })];
    const tree = buildTree(root.traceId, spans)!;
    expect(tree.remoteParentSpanId).toBeUndefined();
    expect(tree.orphans).toBe(1);
    expect(tree.root.children).toHaveLength(1);
    expect(tree.root.children[0]).toMatchObject({ orphan: true, span: { spanId: orphan.spanId } });
    expect(tree.root.children[0]!.children[0]!.span.spanId).toBe(underOrphan.spanId);
    expect(tree.root.children[0]!.children[0]!.orphan).toBeUndefined();
  });

  it('survives cycles and deep chains, ignores other traces, and is undefined without spans', () => {
    const { root, child } = request();
    const a = child();
    const b = child(a);
    // a and b each claim the other as parent: bad input must not loop or vanish.
    const cyclic = [span(root, { start: 0, end: 1 }), { ...span(a, { start: 5 }), parentSpanId: b.spanId }, span(b, { start: 6 })];
    const tree = buildTree(root.traceId, cyclic)!;
    expect(tree.spans).toBe(3);
    expect([...walkTree(tree)]).toHaveLength(3);
    expect(tree.orphans).toBe(1);

    let parent = root;
    const chain = [span(root, { start: 0 })];
    for (let i = 1; i <= 20_000; i++) {
      parent = child(parent);
      chain.push(span(parent, { start: i }));
    }
    const deep = buildTree(root.traceId, chain)!;
    expect(Math.max(...[...walkTree(deep)].map(({ depth }) => depth))).toBe(20_000);

    const other = request();
    expect(buildTree(root.traceId, [span(other.root, { start: 0 })])).toBeUndefined();
    expect(buildTree(root.traceId, [])).toBeUndefined();
  });
});
