/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate`
 * headers, parsed and formatted, and the engine's own trace context. Pure: no I/O but the random
 * ids, so every transport (gRPC metadata, HTTP headers, NATS headers, queued events) shares it.
 */
import { randomBytes } from 'node:crypto';
import { InvalidInputError } from '../errors/index.js';

export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

/** Trace flags the engine keeps when propagating: sampled (Level 1) and random trace id (Level 2). */
export const FLAG_SAMPLED = 0x01;
export const FLAG_RANDOM = 0x02;
const KNOWN_FLAGS = FLAG_SAMPLED | FLAG_RANDOM;

/** One step's place in a trace: the trace, this step's span, the span that caused it. */
export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** 16 lowercase hex digits, not all zero: this step's span. */
  spanId: string;
  /** The span this one was caused by (a remote caller's, or ours), when there is one. */
  parentSpanId?: string;
  /** Trace flags (0..255); bit 0 is `sampled`. */
  flags: number;
  /** The caller's `tracestate`, validated and bounded (see parseTracestate), passed on unchanged. */
  traceState?: string;
}

/** What a `traceparent` header says: the caller's trace and span (its `parent-id`), and flags. */
export interface Traceparent {
  version: number;
  traceId: string;
  parentId: string;
  flags: number;
}

export type TraceparentResult = { ok: true; value: Traceparent } | { ok: false; reason: string };

/** A header as transports hand it over: absent, one value, or every value of a repeated header. */
export type HeaderValue = string | readonly (string | Uint8Array)[] | null | undefined;

const HEX_LC = /^[0-9a-f]+$/;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);
/** Version 00 is exactly `vv-<32>-<16>-ff`. */
const V00_LENGTH = 55;

const isHex = (text: string, length: number): boolean => text.length === length && HEX_LC.test(text);

/** Surrounding optional whitespace (HTTP OWS: spaces and tabs), which the spec's test suite accepts. */
const trimOws = (text: string): string => text.replace(/^[ \t]+|[ \t]+$/g, '');

/**
 * Parses one `traceparent` value exactly as the spec says. Version 00: exactly 55 characters,
 * lowercase hex fields of 2, 32, 16 and 2 digits separated by '-', neither id all zeros. Version
 * ff is invalid. A higher version is parsed leniently: at least 55 characters whose first 55 are
 * read as version 00's fields, followed by the end or a '-' (the rest is the future's, ignored).
 */
export function parseTraceparent(header: string): TraceparentResult {
  if (typeof header !== 'string') return { ok: false, reason: 'not a string' };
  const value = trimOws(header);
  const versionText = value.slice(0, 2);
  if (!isHex(versionText, 2) || value[2] !== '-') return { ok: false, reason: 'version is not 2 lowercase hex digits followed by "-"' };
  if (versionText === 'ff') return { ok: false, reason: 'version ff is invalid' };
  const version = Number.parseInt(versionText, 16);
  if (value.length < V00_LENGTH) return { ok: false, reason: `too short: ${value.length} characters, expected ${V00_LENGTH}` };
  if (version === 0 && value.length !== V00_LENGTH) return { ok: false, reason: `version 00 must be exactly ${V00_LENGTH} characters, got ${value.length}` };
  if (version !== 0 && value.length > V00_LENGTH && value[V00_LENGTH] !== '-') {
    return { ok: false, reason: `a future version's trace-flags must be followed by the end or "-"` };
  }
  const traceId = value.slice(3, 35);
  const parentId = value.slice(36, 52);
  const flagsText = value.slice(53, 55);
  if (!isHex(traceId, 32) || value[35] !== '-') return { ok: false, reason: 'trace-id is not 32 lowercase hex digits followed by "-"' };
  if (!isHex(parentId, 16) || value[52] !== '-') return { ok: false, reason: 'parent-id is not 16 lowercase hex digits followed by "-"' };
  if (!isHex(flagsText, 2)) return { ok: false, reason: 'trace-flags is not 2 lowercase hex digits' };
  if (traceId === ZERO_TRACE_ID) return { ok: false, reason: 'trace-id is all zeros' };
  if (parentId === ZERO_SPAN_ID) return { ok: false, reason: 'parent-id is all zeros' };
  return { ok: true, value: { version, traceId, parentId, flags: Number.parseInt(flagsText, 16) } };
}

/** The `traceparent` announcing `context`'s span to the next hop (always version 00). */
export function formatTraceparent(context: Pick<TraceContext, 'traceId' | 'spanId' | 'flags'>): string {
  if (!isTraceId(context.traceId)) {
    throw new InvalidInputError('invalid_argument', `trace id ${JSON.stringify(context.traceId)} is invalid: expected 32 lowercase hex digits, not all zero`, { field: 'traceId' });
  }
  if (!isSpanId(context.spanId)) {
    throw new InvalidInputError('invalid_argument', `span id ${JSON.stringify(context.spanId)} is invalid: expected 16 lowercase hex digits, not all zero`, { field: 'spanId' });
  }
  const flags = (context.flags & 0xff).toString(16).padStart(2, '0');
  return `00-${context.traceId}-${context.spanId}-${flags}`;
}

export const isTraceId = (id: unknown): id is string => typeof id === 'string' && isHex(id, 32) && id !== ZERO_TRACE_ID;
export const isSpanId = (id: unknown): id is string => typeof id === 'string' && isHex(id, 16) && id !== ZERO_SPAN_ID;

/** The spec's bounds on `tracestate`. */
export const TRACESTATE_LIMITS = Object.freeze({ members: 32, propagateChars: 512, largeMemberChars: 128 });

const KEY_CHARS = '[a-z0-9_\\-*/]';
const SIMPLE_KEY = new RegExp(`^[a-z]${KEY_CHARS}{0,255}$`);
const MULTI_TENANT_KEY = new RegExp(`^[a-z0-9]${KEY_CHARS}{0,240}@[a-z]${KEY_CHARS}{0,13}$`);
/** 0 to 255 of 0x20..0x7e but ',' and '=', not ending in a space. */
const VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * Parses every `tracestate` header (repeated headers are one list, in order) into the value the
 * engine passes on, or undefined when there is none or it is invalid: a malformed member, a
 * duplicate key, or more than 32 members discard the whole header, as the spec's test suite
 * expects. Empty members and whitespace around members are dropped. Past 512 characters the list
 * is truncated as the spec says: members longer than 128 characters go first, then from the end.
 */
export function parseTracestate(headers: HeaderValue): string | undefined {
  const values = headerValues(headers);
  if (values === undefined) return undefined;
  const members: string[] = [];
  const keys = new Set<string>();
  for (const member of values.join(',').split(',')) {
    const trimmed = trimOws(member);
    if (trimmed === '') continue;
    const equals = trimmed.indexOf('=');
    if (equals < 0) return undefined;
    const key = trimmed.slice(0, equals);
    const value = trimmed.slice(equals + 1);
    if (!(SIMPLE_KEY.test(key) || MULTI_TENANT_KEY.test(key)) || !VALUE.test(value) || keys.has(key)) return undefined;
    keys.add(key);
    members.push(`${key}=${value}`);
  }
  if (members.length === 0 || members.length > TRACESTATE_LIMITS.members) return undefined;
  return truncateTracestate(members).join(',') || undefined;
}

function truncateTracestate(members: string[]): string[] {
  const length = (list: string[]) => list.reduce((sum, member) => sum + member.length, 0) + Math.max(0, list.length - 1);
  let kept = members;
  for (let i = kept.length - 1; length(kept) > TRACESTATE_LIMITS.propagateChars && i >= 0; i--) {
    if (kept[i]!.length > TRACESTATE_LIMITS.largeMemberChars) kept = kept.filter((_member, j) => j !== i);
  }
  while (length(kept) > TRACESTATE_LIMITS.propagateChars) kept = kept.slice(0, -1);
  return kept;
}

const isAbsent = (header: HeaderValue): boolean => header === undefined || header === null || (typeof header !== 'string' && header.length === 0);

/** The values of a header, or undefined when absent or not text (a binary gRPC value). */
function headerValues(header: HeaderValue): string[] | undefined {
  if (isAbsent(header)) return undefined;
  const list = typeof header === 'string' ? [header] : [...header!];
  if (list.some((value) => typeof value !== 'string')) return undefined;
  return list as string[];
}

export type RandomSource = (bytes: number) => Buffer;

/** Bytes taken from the CSPRNG at once: one call per ~170 new traces instead of two per trace. */
const RANDOM_POOL_BYTES = 4096;
let randomPool = Buffer.alloc(0);
let randomOffset = 0;

/**
 * crypto.randomBytes, drawn from a pool refilled in 4 KiB blocks (each id on the hot path would
 * otherwise cost a call into the CSPRNG). The views it returns stay valid: a refill makes a new
 * buffer, and no byte is handed out twice.
 */
/** pooledRandomBytes(bytes).toString('hex') without the Buffer view in between. */
function pooledHex(bytes: number): string {
  if (randomOffset + bytes > randomPool.length) {
    randomPool = randomBytes(Math.max(RANDOM_POOL_BYTES, bytes));
    randomOffset = 0;
  }
  const hex = randomPool.toString('hex', randomOffset, randomOffset + bytes);
  randomOffset += bytes;
  return hex;
}

export const pooledRandomBytes: RandomSource = (bytes) => {
  if (randomOffset + bytes > randomPool.length) {
    randomPool = randomBytes(Math.max(RANDOM_POOL_BYTES, bytes));
    randomOffset = 0;
  }
  const out = randomPool.subarray(randomOffset, randomOffset + bytes);
  randomOffset += bytes;
  return out;
};

/** Random non-zero ids (an all-zero id is invalid; with crypto randomness it never repeats anyway). */
function randomId(bytes: number, random: RandomSource): string {
  for (;;) {
    const id = random === pooledRandomBytes ? pooledHex(bytes) : random(bytes).toString('hex');
    if (/[^0]/.test(id)) return id;
  }
}

export const newTraceId = (random: RandomSource = pooledRandomBytes): string => randomId(16, random);
export const newSpanId = (random: RandomSource = pooledRandomBytes): string => randomId(8, random);

/** A new trace: random ids, sampled unless told otherwise, marked as having a random trace id. */
export function newRootContext(options: { sampled?: boolean; random?: RandomSource } = {}): TraceContext {
  const random = options.random ?? pooledRandomBytes;
  return { traceId: newTraceId(random), spanId: newSpanId(random), flags: FLAG_RANDOM | (options.sampled === false ? 0 : FLAG_SAMPLED) };
}

/** The next step of the same trace: a new span caused by `parent`'s, flags and tracestate kept. */
export function childContext(parent: TraceContext, random: RandomSource = pooledRandomBytes): TraceContext {
  const child: TraceContext = { traceId: parent.traceId, spanId: newSpanId(random), parentSpanId: parent.spanId, flags: parent.flags & KNOWN_FLAGS };
  if (parent.traceState !== undefined) child.traceState = parent.traceState;
  return child;
}

export const isSampled = (context: Pick<TraceContext, 'flags'>): boolean => (context.flags & FLAG_SAMPLED) !== 0;

/** Reads a header by name from a getter or a plain object (names compared case-insensitively). */
export type HeaderCarrier = ((name: string) => HeaderValue) | Readonly<Record<string, HeaderValue>>;

function readHeader(carrier: HeaderCarrier, name: string): HeaderValue {
  if (typeof carrier === 'function') return carrier(name);
  // Every spelling of the name counts: two of them are a repeated header.
  const found = Object.keys(carrier).filter((key) => key.toLowerCase() === name);
  if (found.length === 0) return undefined;
  return found.flatMap((key) => {
    const value = carrier[key];
    return value === undefined || value === null ? [] : typeof value === 'string' ? [value] : [...value];
  });
}

export interface IncomingTrace {
  /** The engine's context for this step: a child of the caller's span, or a new root. */
  context: TraceContext;
  /** The caller's context from its `traceparent` (its span is `context.parentSpanId`), when valid. */
  remote?: TraceContext;
  /** Why a `traceparent` that was sent was ignored (for a debug log line), when one was. */
  ignored?: string;
}

/**
 * The context of one incoming request (gRPC metadata, HTTP headers, a queued event's headers):
 * continues the caller's trace when it sent exactly one valid `traceparent` (with its
 * `tracestate`), else starts a new one and drops any `tracestate`, as the spec says.
 */
export function continueTrace(carrier: HeaderCarrier, options: { sampled?: boolean; random?: RandomSource } = {}): IncomingTrace {
  const random = options.random ?? pooledRandomBytes;
  const header = readHeader(carrier, TRACEPARENT);
  const values = headerValues(header);
  let ignored: string | undefined;
  if (!isAbsent(header) && values === undefined) ignored = 'traceparent is not text';
  else if (values !== undefined && values.length > 1) ignored = `traceparent sent ${values.length} times`;
  else if (values !== undefined) {
    const parsed = parseTraceparent(values[0]!);
    if (parsed.ok) {
      const remote: TraceContext = { traceId: parsed.value.traceId, spanId: parsed.value.parentId, flags: parsed.value.flags & KNOWN_FLAGS };
      const traceState = parseTracestate(readHeader(carrier, TRACESTATE));
      if (traceState !== undefined) remote.traceState = traceState;
      return { context: childContext(remote, random), remote };
    }
    ignored = `malformed traceparent ${JSON.stringify(values[0]!.slice(0, 80))}: ${parsed.reason}`;
  }
  const started: IncomingTrace = { context: newRootContext({ sampled: options.sampled, random }) };
  if (ignored !== undefined) started.ignored = ignored;
  return started;
}

/** The headers announcing `context` to the next hop (a callee, a queued event, the client's reply). */
export function traceHeaders(context: TraceContext): { traceparent: string; tracestate?: string } {
  const headers: { traceparent: string; tracestate?: string } = { traceparent: formatTraceparent(context) };
  if (context.traceState !== undefined) headers.tracestate = context.traceState;
  return headers;
}

/**
 * The trace id a person asks about (`cocaine-deploy trace ID`): a trace id in either case, or a
 * whole `traceparent` as a client printed it. Errors name the field.
 */
export function traceIdArgument(text: string): string {
  const value = typeof text === 'string' ? trimOws(text) : '';
  const lower = value.toLowerCase();
  if (isTraceId(lower)) return lower;
  const parsed = parseTraceparent(value);
  if (parsed.ok) return parsed.value.traceId;
  throw new InvalidInputError('invalid_argument', `trace id ${JSON.stringify(text)} is invalid: expected 32 hex digits (not all zero) or a traceparent`, { field: 'traceId' });
}

/** The trace id of a stored event's headers (its `traceparent`), when it has a valid one. */
export function traceIdOfHeaders(headers: Readonly<Record<string, string>> | undefined): string | undefined {
  if (!headers) return undefined;
  const incoming = continueTrace(headers);
  return incoming.remote?.traceId;
}

/** `headers` with its trace headers (any spelling) replaced by those of `context`. */
export function withTraceHeaders(headers: Record<string, string>, context: TraceContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    const lower = key.toLowerCase();
    if (lower !== TRACEPARENT && lower !== TRACESTATE) out[key] = value;
  }
  return Object.assign(out, traceHeaders(context));
}
