import type { Deadline, Metadata, Server } from '@grpc/grpc-js';
import type { EventEmitter } from 'node:events';
import { MAX_TIMER_MS } from '../util/timers.js';

/**
 * gRPC deadlines past 2^31-1 ms (about 24.8 days). grpc-js's server reads the `grpc-timeout`
 * header as `ms | 0` and arms a plain setTimeout, so a 30-day deadline wraps negative and the
 * call expires at once. Before grpc-js sees a request, such a header is taken off and the
 * absolute deadline is passed on in LONG_DEADLINE_HEADER instead; the engine enforces it itself
 * (through the invocation's deadline, whose far timers are safe). Nearer deadlines are untouched.
 */
export const LONG_DEADLINE_HEADER = 'cocaine-long-deadline-ms';

const TIMEOUT_HEADER = 'grpc-timeout';
const TIMEOUT_PATTERN = /^(\d{1,8})\s*([HMSmun])$/;
const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** The request's `grpc-timeout` in ms, or undefined when absent or malformed (grpc-js answers those). */
function timeoutMsOf(value: unknown): number | undefined {
  const match = typeof value === 'string' ? TIMEOUT_PATTERN.exec(value.trim()) : null;
  return match ? Number(match[1]) * UNIT_MS[match[2]!]! : undefined;
}

/** Rewrites one request's HTTP/2 headers in place (exported for the unit test). */
export function moveLongTimeout(headers: Record<string, unknown>, now = Date.now()): void {
  const ms = timeoutMsOf(headers[TIMEOUT_HEADER]);
  if (ms === undefined || ms <= MAX_TIMER_MS) return;
  delete headers[TIMEOUT_HEADER];
  headers[LONG_DEADLINE_HEADER] = String(now + ms);
}

/**
 * Installs the rewrite on every HTTP/2 server of a bound grpc-js Server, ahead of grpc-js's own
 * 'stream' listener. Returns false when grpc-js no longer exposes them (the contract test shows it).
 */
export function acceptLongDeadlines(server: Server): boolean {
  const http2Servers = (server as unknown as { http2Servers?: Map<EventEmitter, unknown> }).http2Servers;
  if (!(http2Servers instanceof Map) || http2Servers.size === 0) return false;
  for (const http2Server of http2Servers.keys()) {
    http2Server.prependListener('stream', (_stream: unknown, headers: Record<string, unknown>) => moveLongTimeout(headers));
  }
  return true;
}

/** The call's deadline as epoch ms (0 = none), including one moved by acceptLongDeadlines. */
export function callDeadlineMs(call: { getDeadline(): Deadline; metadata: Metadata }): number {
  const moved = call.metadata.get(LONG_DEADLINE_HEADER)[0];
  if (typeof moved === 'string' && /^\d{1,16}$/.test(moved)) return Number(moved);
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}
