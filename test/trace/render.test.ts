import { describe, expect, it } from 'vitest';
import { renderTraceJson, renderTraceText } from '../../engine/trace/render.js';
import { startSpan } from '../../engine/trace/span.js';
import { buildTree } from '../../engine/trace/tree.js';
import { request, span } from './spans.js';

const T0 = Date.UTC(2026, 11, 2, 3, 0, 0);

function shopTrace() {
  const remote = request();
  const invoke = remote.child();
  const reserve = remote.child(invoke);
  const audit = remote.child(reserve);
  const mail = remote.child(invoke);
  const lost = remote.child(invoke);
  const orphan = remote.child(lost);
  const spans = [
    span(invoke, { kind: 'invoke', target: 'shop@buy', start: T0, end: T0 + 125 }),
    span(reserve, { target: 'stock@reserve', start: T0 + 3, end: T0 + 43 }),
    span(audit, { kind: 'emit', target: 'audit@log', start: T0 + 10, end: T0 + 11 }),
    { ...startSpan(mail, { kind: 'queued', target: 'mail@send', node: 'node-b', worker: 'w2', attempt: 2, eventId: 'ev-9', start: T0 + 50 }) },
    span(orphan, { target: 'pay@charge', node: 'node-c', start: T0 + 60, end: T0 + 12_060, error: { code: 'worker_crashed', message: 'worker exited\nwith code 3' } }),
  ];
  return { remote, invoke, reserve, audit, mail, orphan, tree: buildTree(remote.root.traceId, spans, 2)! };
}

describe('render', () => {
  it('renders text: an indented tree with offsets from the root, durations, outcomes and nodes', () => {
    const { remote, tree } = shopTrace();
    const text = renderTraceText(tree);
    expect(text.split('\n')).toEqual([
      `trace ${remote.root.traceId}  started 2026-12-02T03:00:00.000Z  5 spans  total 12.1 s`,
      `  continues the caller's span ${remote.root.spanId}`,
      'invoke  shop@buy  +0 ms  125 ms  ok  (node node-a)',
      '├─ call  stock@reserve  +3 ms  40 ms  ok  (node node-a)',
      '│  └─ emit  audit@log  +10 ms  1 ms  ok  (node node-a)',
      '├─ queued  mail@send  +50 ms  running  (node node-b, worker w2, event ev-9, attempt 2)',
      `└─ call  pay@charge  +60 ms  12.0 s  error worker_crashed: worker exited with code 3  (node node-c)  [orphan: parent ${tree.root.children[2]!.span.parentSpanId} not in trace]`,
      '1 span (marked "orphan") whose parent is not in the trace shown under the root',
      '2 spans dropped past the per-trace bound',
    ]);
  });

  it('renders JSON: nested spans with offsets, durations and outcomes, serialisable as is', () => {
    const { remote, invoke, reserve, audit, mail, orphan, tree } = shopTrace();
    const json = renderTraceJson(tree);
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
    expect(json).toMatchObject({ traceId: remote.root.traceId, remoteParentSpanId: remote.root.spanId, start: '2026-12-02T03:00:00.000Z', durationMs: 12_060, spans: 5, orphans: 1, dropped: 2 });
    expect(json.root).toMatchObject({ spanId: invoke.spanId, parentSpanId: remote.root.spanId, kind: 'invoke', target: 'shop@buy', offsetMs: 0, durationMs: 125, outcome: 'ok' });
    const [first, second, third] = json.root.children;
    expect(first).toMatchObject({ spanId: reserve.spanId, offsetMs: 3, durationMs: 40, children: [{ spanId: audit.spanId, kind: 'emit', offsetMs: 10 }] });
    expect(second).toEqual({ spanId: mail.spanId, parentSpanId: invoke.spanId, kind: 'queued', target: 'mail@send', node: 'node-b', worker: 'w2', offsetMs: 50, outcome: 'running', attempt: 2, eventId: 'ev-9', children: [] });
    expect(third).toMatchObject({ spanId: orphan.spanId, orphan: true, outcome: { code: 'worker_crashed', message: 'worker exited\nwith code 3' } });
  });

  it('renders a lone running root', () => {
    const { root } = request();
    const tree = buildTree(root.traceId, [span(root, { kind: 'http', target: 'web@index', start: T0 })])!;
    expect(renderTraceText(tree).split('\n')).toEqual([`trace ${root.traceId}  started 2026-12-02T03:00:00.000Z  1 span  total running`, 'http  web@index  +0 ms  running  (node node-a)']);
    expect(renderTraceJson(tree)).not.toHaveProperty('durationMs');
  });
});
