import { continueTrace, withTraceHeaders } from '../trace/context.js';
import type { SpanStart } from '../trace/span.js';
import type { ActiveSpan, Tracer } from '../trace/tracer.js';
import { InvalidInputError } from '../errors/index.js';
import type { ParentInvocation } from '../worker/service-channels.js';
import { TRACEPARENT_HEADER, TRACESTATE_HEADER } from './types.js';

/** Reads service arguments; errors name the field as `args.<name>`. */
export function stringArg(args: Record<string, unknown>, name: string, required: true): string;
export function stringArg(args: Record<string, unknown>, name: string, required?: false): string | undefined;
export function stringArg(args: Record<string, unknown>, name: string, required = false): string | undefined {
  const value = args[name];
  if (value === undefined || value === null || value === '') {
    if (required) throw new InvalidInputError('invalid_argument', `args.${name} is missing`, { field: `args.${name}` });
    return undefined;
  }
  if (typeof value !== 'string') throw new InvalidInputError('invalid_argument', `args.${name} must be a string, got ${typeof value}`, { field: `args.${name}` });
  return value;
}

export function integerArg(args: Record<string, unknown>, name: string, min = 0): number | undefined {
  const value = args[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidInputError('invalid_argument', `args.${name} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`, { field: `args.${name}` });
  }
  return value;
}

export function headersArg(args: Record<string, unknown>): Record<string, string> {
  const value = args.headers;
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new InvalidInputError('invalid_argument', 'args.headers must be an object of strings', { field: 'args.headers' });
  const headers: Record<string, string> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    if (typeof item !== 'string') throw new InvalidInputError('invalid_argument', `args.headers.${key} must be a string`, { field: `args.headers.${key}` });
    headers[key.toLowerCase()] = item;
  }
  return headers;
}

/** `call` and `emit` belong to an invocation. */
export function requireParent(parent: ParentInvocation | undefined, service: string): ParentInvocation {
  if (!parent) throw new InvalidInputError('invalid_argument', `${service} needs the invocation it is made for (parent 0: outside any handler)`, { field: 'parent' });
  return parent;
}

/** Calls and emits made under an invocation continue its trace. */
export function withTrace(headers: Record<string, string>, parent: ParentInvocation): Record<string, string> {
  const traceparent = parent.headers[TRACEPARENT_HEADER];
  if (traceparent && headers[TRACEPARENT_HEADER] === undefined) {
    headers[TRACEPARENT_HEADER] = traceparent;
    const tracestate = parent.headers[TRACESTATE_HEADER];
    if (tracestate && headers[TRACESTATE_HEADER] === undefined) headers[TRACESTATE_HEADER] = tracestate;
  }
  return headers;
}

/**
 * The span of one service request under the handler's trace (its `traceparent`), with the
 * headers the callee or the emitted event gets: the span's own `traceparent`.
 */
export function beginServiceSpan(
  tracer: Tracer | undefined,
  headers: Record<string, string>,
  fields: Omit<SpanStart, 'node'>,
): { active?: ActiveSpan; headers: Record<string, string> } {
  if (!tracer) return { headers };
  const active = tracer.begin(continueTrace(headers).context, fields);
  return { active, headers: withTraceHeaders(headers, active.context) };
}

/** Collects a request body until END. */
export class BodyBuffer {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  constructor(
    private readonly limit: number,
    private readonly what: string,
  ) {}
  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes <= this.limit) this.chunks.push(chunk);
  }
  take(): Buffer {
    if (this.bytes > this.limit) throw new InvalidInputError('invalid_argument', `${this.what} is ${this.bytes} bytes, over the limit of ${this.limit}`, { field: 'body' });
    return Buffer.concat(this.chunks, this.bytes);
  }
}
