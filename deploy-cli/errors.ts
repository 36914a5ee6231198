import { RemoteError } from '../engine/api/status.js';
import { EngineError, InvalidInputError, type ErrorCode } from '../engine/errors/index.js';

/** Exit codes, documented in docs/cli.md. */
export const EXIT = Object.freeze({
  ok: 0,
  usage: 1,
  notFound: 2,
  unavailable: 3,
  deadline: 4,
  handler: 5,
  internal: 6,
});

const EXIT_BY_CODE: Readonly<Partial<Record<ErrorCode, number>>> = Object.freeze({
  invalid_argument: EXIT.usage,
  invalid_manifest: EXIT.usage,
  invalid_profile: EXIT.usage,
  unsafe_archive: EXIT.usage,
  message_too_large: EXIT.usage,
  session_id_in_use: EXIT.usage,
  not_found: EXIT.notFound,
  event_id_not_found: EXIT.notFound,
  app_not_found: EXIT.notFound,
  event_not_found: EXIT.notFound,
  app_stopped: EXIT.unavailable,
  app_broken: EXIT.unavailable,
  queue_full: EXIT.unavailable,
  shutting_down: EXIT.unavailable,
  worker_crashed: EXIT.unavailable,
  worker_unavailable: EXIT.unavailable,
  spawn_failed: EXIT.unavailable,
  startup_timeout: EXIT.unavailable,
  heartbeat_timeout: EXIT.unavailable,
  deadline_exceeded: EXIT.deadline,
  handler_error: EXIT.handler,
  call_depth_exceeded: EXIT.unavailable,
  revision_mismatch: EXIT.unavailable,
  quota_exceeded: EXIT.unavailable,
});

/** A failure of the CLI itself (bad flag combination, unreadable file): exit 1. `field` names the flag or argument. */
export class UsageError extends InvalidInputError {
  constructor(message: string, field?: string) {
    super('invalid_argument', message, { field });
  }
}

export function exitCodeFor(error: unknown): number {
  if (error instanceof EngineError) return EXIT_BY_CODE[error.code] ?? EXIT.internal;
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR') return EXIT.usage;
  return EXIT.internal;
}

function isUnreachable(error: unknown): error is RemoteError {
  return error instanceof RemoteError && !error.fromEngine && error.status === 14;
}

/** What went wrong (one line per problem, no stack) and, when the engine could not be reached, where. */
export function messageLines(error: unknown, engineAddress: string): string[] {
  let message = error instanceof Error ? error.message : String(error);
  if (isUnreachable(error)) {
    const reason = message.replace(/\s*Resolution note:.*$/s, '').replace(/^No connection established\. Last error: (Error: )?/, '').replace(/\.$/, '');
    message = `cannot reach the engine at ${engineAddress}: ${reason.replace(/\s*\n\s*/g, ' ')}`;
  }
  const lines = message.split('\n').map((line) => line.trim()).filter(Boolean);
  return lines.length > 0 ? lines : ['unknown error'];
}

/** The message on one line (for reports that prefix it, e.g. `line 3: ...`). */
export function messageFor(error: unknown, engineAddress: string): string {
  return messageLines(error, engineAddress).join('; ');
}

/** `{"error": {code, message, field}}`: what --json writes on stderr. */
export interface ErrorReport {
  code: string;
  message: string;
  field?: string;
}

export function reportFor(error: unknown, engineAddress: string): ErrorReport {
  const code = isUnreachable(error) ? 'engine_unreachable' : error instanceof EngineError ? error.code : exitCodeFor(error) === EXIT.usage ? 'invalid_argument' : 'internal';
  const field = error instanceof InvalidInputError ? error.field : undefined;
  return { code, message: messageLines(error, engineAddress).join('\n'), ...(field ? { field } : {}) };
}

/** Writes the error on stderr: `cocaine-deploy: <line>` per line, or one JSON object with --json. */
export function writeError(name: string, report: ErrorReport, json: boolean): void {
  if (json) process.stderr.write(`${JSON.stringify({ error: { code: report.code, message: report.message, field: report.field ?? null } })}\n`);
  else process.stderr.write(report.message.split('\n').map((line) => `${name}: ${line}\n`).join(''));
}
