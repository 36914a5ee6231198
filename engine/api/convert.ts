import type { EventStatus } from '../queue/types.js';
import type { CrashlogEntry, CrashlogSummary } from '../storage/types.js';
import type { AppView, LogLine, NodeInfo } from './facade.js';
import type { AppInfoMessage, CrashlogMessage, EventStatusMessage, LogLineMessage, NodeInfoMessage } from './messages.js';

/** Facade values → proto messages (server side). */

export function appInfoMessage(view: AppView): AppInfoMessage {
  const { record } = view;
  return {
    name: record.name,
    plugin: record.manifest.plugin,
    entrypoint: record.manifest.entrypoint,
    manifestJson: JSON.stringify(record.manifest),
    sha256: record.sha256,
    size: record.size,
    uploadedAtMs: record.uploadedAt,
    state: view.state,
    profile: view.profile,
    inRunlist: view.inRunlist,
    error: view.error ?? '',
  };
}

export function eventStatusMessage(status: EventStatus): EventStatusMessage {
  return {
    id: status.id,
    target: `${status.app}@${status.event}`,
    state: status.state,
    attempts: status.attempts,
    maxAttempts: status.maxAttempts,
    lastError: status.lastError ?? '',
    result: status.result ?? Buffer.alloc(0),
    resultTruncated: status.resultTruncated,
    createdAtMs: status.createdAt,
    updatedAtMs: status.updatedAt,
    traceId: status.traceId ?? '',
  };
}

export function crashlogMessage(entry: CrashlogSummary | CrashlogEntry): CrashlogMessage {
  return {
    id: entry.id,
    app: entry.app,
    workerId: entry.workerId,
    timestampMs: entry.timestamp,
    reason: entry.reason,
    lines: 'lines' in entry ? entry.lines : [],
  };
}

export function logLineMessage(line: LogLine): LogLineMessage {
  return { timestampMs: line.timestamp, workerId: line.workerId, stream: line.stream, line: line.line };
}

export function nodeInfoMessage(node: NodeInfo): NodeInfoMessage {
  return {
    nodeId: node.nodeId,
    version: node.version,
    uptimeMs: node.uptimeMs,
    listen: node.listen,
    storage: node.storage,
    queue: node.queue,
    isolate: node.isolate,
    apps: node.apps.map((app) => ({
      name: app.name,
      state: app.state,
      profile: app.profile,
      poolSize: app.poolSize,
      busy: app.busy,
      idle: app.idle,
      pending: app.pending,
      sessions: app.sessions,
      queuedEvents: app.queuedEvents,
      counters: { ...app.counters },
      error: app.error ?? '',
    })),
    plugins: node.plugins.map((plugin) => ({ ...plugin })),
    seenAtMs: node.seenAt,
  };
}
