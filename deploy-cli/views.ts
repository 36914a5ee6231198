import type { AppInfoMessage, CrashlogMessage, EventStatusMessage, ProfileInfoMessage } from '../engine/api/messages.js';
import { formatTime } from './output.js';

/** JSON shapes printed with --json (stable for scripts; see docs/cli.md). */

export function appJson(app: AppInfoMessage) {
  return {
    name: app.name,
    state: app.state,
    profile: app.profile,
    plugin: app.plugin,
    entrypoint: app.entrypoint,
    inRunlist: app.inRunlist,
    sha256: app.sha256,
    size: app.size,
    uploadedAt: formatTime(app.uploadedAtMs),
    manifest: app.manifestJson ? (JSON.parse(app.manifestJson) as unknown) : undefined,
    error: app.error || undefined,
  };
}

export function profileJson(profile: ProfileInfoMessage) {
  return { name: profile.name, profile: profile.profileJson ? (JSON.parse(profile.profileJson) as Record<string, unknown>) : {} };
}

function isUtf8(buffer: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(buffer);
    return true;
  } catch {
    return false;
  }
}

export function eventJson(event: EventStatusMessage) {
  const result = event.result ?? Buffer.alloc(0);
  const text = result.length > 0 && isUtf8(result);
  return {
    id: event.id,
    target: event.target,
    state: event.state,
    attempts: event.attempts,
    maxAttempts: event.maxAttempts,
    lastError: event.lastError || undefined,
    result: text ? result.toString('utf8') : undefined,
    resultBase64: result.length > 0 && !text ? result.toString('base64') : undefined,
    resultTruncated: event.resultTruncated,
    createdAt: formatTime(event.createdAtMs),
    updatedAt: formatTime(event.updatedAtMs),
    traceId: event.traceId || undefined,
  };
}

export function crashlogJson(entry: CrashlogMessage, withLines: boolean) {
  return {
    id: entry.id,
    app: entry.app,
    workerId: entry.workerId,
    timestamp: formatTime(entry.timestampMs),
    reason: entry.reason,
    ...(withLines ? { lines: entry.lines } : {}),
  };
}
