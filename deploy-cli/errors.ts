import { RemoteError } from '../engine/api/status.js';
import { EngineError, type ErrorCode } from '../engine/errors/index.js';

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
  not_found: EXIT.notFound,
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
});

/** A failure of the CLI itself (bad flag combination, unreadable file): exit 1. */
export class UsageError extends EngineError {
  constructor(message: string) {
    super('invalid_argument', message);
  }
}

export function exitCodeFor(error: unknown): number {
  if (error instanceof EngineError) return EXIT_BY_CODE[error.code] ?? EXIT.internal;
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR') return EXIT.usage;
  return EXIT.internal;
}

/** One line, no stack: what went wrong and, when the engine could not be reached, where. */
export function messageFor(error: unknown, engineAddress: string): string {
  let message = error instanceof Error ? error.message : String(error);
  if (error instanceof RemoteError && !error.fromEngine && error.status === 14) {
    const reason = message.replace(/\s*Resolution note:.*$/s, '').replace(/^No connection established\. Last error: (Error: )?/, '').replace(/\.$/, '');
    message = `cannot reach the engine at ${engineAddress}: ${reason}`;
  }
  return message.replace(/\s*\n\s*/g, ' ').trim();
}
