import type { LogRecord } from '../worker/service-channels.js';
import { TRACEPARENT_HEADER, type ServiceDeps } from './types.js';

/** The stream name of structured records in an app's logs (beside stdout, stderr, engine). */
export const LOG_STREAM = 'log';

/** A structured record as it is kept in the app's logs: one JSON line. */
export interface StructuredLogRecord {
  app: string;
  worker: string;
  event?: string;
  trace?: string;
  level: string;
  message: string;
  fields: Record<string, unknown>;
}

/** A worker's LOG frame → one structured line of its app's logs. */
export function writeLog(deps: ServiceDeps, record: LogRecord): void {
  const parent = record.parent;
  const trace = traceId(parent?.headers[TRACEPARENT_HEADER]);
  const line: StructuredLogRecord = {
    app: record.app,
    worker: record.workerId,
    ...(parent ? { event: parent.event } : {}),
    ...(trace ? { trace } : {}),
    level: record.level,
    message: record.message,
    fields: record.fields,
  };
  deps.logsFor(record.app).add(record.workerId, LOG_STREAM, JSON.stringify(line));
}

/** The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`). */
function traceId(traceparent: string | undefined): string | undefined {
  const match = traceparent ? /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(traceparent.trim()) : null;
  return match ? match[1] : undefined;
}
