import { InvalidInputError } from '../errors/index.js';
import type { EnqueueInput } from './facade.js';
import { parseTarget, validateName, type NameKind, type Target } from '../util/names.js';

/**
 * The ONE place where request fields coming over the wire (gRPC Engine and Deploy, NATS
 * request-reply) are checked before the engine sees them. Every refusal is INVALID_ARGUMENT
 * (`invalid_argument`) and its message starts with the field's name and states the limit, so a
 * 10 KB id is refused at the edge instead of failing deep inside a store. docs/clients.md lists
 * these limits for client writers.
 */
export const REQUEST_LIMITS = Object.freeze({
  /** "app@event": two names of at most 64 characters and the '@'. */
  targetChars: 129,
  /** App, event and profile names (letters, digits, '.', '_', '-'; see util/names.ts). */
  nameChars: 64,
  /** Event ids (Enqueue `id`, Status, Redrive) and crashlog ids. */
  idChars: 256,
  /** Invoke / InvokeStream / Session `routing_key` (any characters but control characters). */
  routingKeyChars: 256,
  /** Headers of one request. */
  headerCount: 64,
  headerNameChars: 256,
  headerValueBytes: 16 * 1024,
  headersTotalBytes: 64 * 1024,
  /** timeout_ms, delay_ms and NATS Cocaine-Timeout-Ms: at most one year (past setTimeout's 2^31-1 ms). */
  durationMs: 366 * 24 * 60 * 60 * 1000,
  /** Enqueue max_attempts. */
  maxAttempts: 10_000,
  /** AppLogs lines. */
  logLines: 100_000,
  /** Session ids and EnqueueStream seqs travel as uint64 but must be exact in JavaScript. */
  sequence: Number.MAX_SAFE_INTEGER,
});

// Control characters (C0, DEL, C1): never valid in an id or header.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function refuse(field: string, message: string): InvalidInputError {
  return new InvalidInputError('invalid_argument', `${field}: ${message}`, { field });
}

/** A value for an error message: long values are cut, so the refusal stays one readable line. */
export function shown(value: string): string {
  return value.length <= 64 ? JSON.stringify(value) : `${JSON.stringify(value.slice(0, 32))}... (${value.length} characters)`;
}

/** An app, event or profile name. */
export function nameField(kind: NameKind, value: string, field: string = kind): string {
  if (typeof value !== 'string' || value === '') throw refuse(field, `the ${kind} name is empty`);
  if (value.length > REQUEST_LIMITS.nameChars) throw refuse(field, `the ${kind} name is ${value.length} characters: the limit is ${REQUEST_LIMITS.nameChars}`);
  try {
    return validateName(kind, value);
  } catch (error) {
    throw refuse(field, (error as Error).message);
  }
}

/** As nameField; an empty string (the proto default) is undefined. */
export function optionalName(kind: NameKind, value: string, field: string = kind): string | undefined {
  return value === '' || value === undefined ? undefined : nameField(kind, value, field);
}

/** "app@event" → its two names. */
export function targetField(value: string, field = 'target'): Target {
  if (typeof value !== 'string' || value === '') throw refuse(field, 'empty: expected "app@event"');
  if (value.length > REQUEST_LIMITS.targetChars) throw refuse(field, `${value.length} characters: the limit is ${REQUEST_LIMITS.targetChars} ("app@event", names of at most 64)`);
  const at = value.indexOf('@');
  if (at > 0 && at < value.length - 1 && value.indexOf('@', at + 1) < 0) {
    return { app: nameField('app', value.slice(0, at), field), event: nameField('event', value.slice(at + 1), field) };
  }
  try {
    return parseTarget(value); // throws, naming what is missing
  } catch (error) {
    throw refuse(field, (error as Error).message.replace(/^target /, ''));
  }
}

/** An event id (Status, Redrive, Enqueue `id`) or a crashlog id. */
export function idField(value: string, field = 'id'): string {
  if (typeof value !== 'string' || value === '') throw refuse(field, 'the id is empty');
  if (value.length > REQUEST_LIMITS.idChars) throw refuse(field, `the id is ${value.length} characters: the limit is ${REQUEST_LIMITS.idChars}`);
  if (CONTROL.test(value)) throw refuse(field, `the id ${shown(value)} contains a control character`);
  return value;
}

/** As idField; an empty string (the proto default) is undefined. */
export function optionalId(value: string, field = 'id'): string | undefined {
  return value === '' || value === undefined ? undefined : idField(value, field);
}

/** A routing key (Invoke, InvokeStream, Session `routing_key`); empty (the proto default) is none. */
export function routingKeyField(value: string | undefined, field = 'routing_key'): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw refuse(field, 'the routing key is not a string');
  if (value.length > REQUEST_LIMITS.routingKeyChars) throw refuse(field, `the routing key is ${value.length} characters: the limit is ${REQUEST_LIMITS.routingKeyChars}`);
  if (CONTROL.test(value)) throw refuse(field, `the routing key ${shown(value)} contains a control character`);
  return value;
}

/** Request headers: counted, sized, names without control characters. */
export function headersField(value: Record<string, string> | undefined | null, field = 'headers'): Record<string, string> {
  if (value === undefined || value === null) return {};
  const entries = Object.entries(value);
  if (entries.length > REQUEST_LIMITS.headerCount) throw refuse(field, `${entries.length} headers: the limit is ${REQUEST_LIMITS.headerCount}`);
  let total = 0;
  for (const [name, text] of entries) {
    const at = `${field}[${shown(name)}]`;
    if (name === '') throw refuse(field, 'a header name is empty');
    if (name.length > REQUEST_LIMITS.headerNameChars) throw refuse(at, `the header name is ${name.length} characters: the limit is ${REQUEST_LIMITS.headerNameChars}`);
    if (CONTROL.test(name)) throw refuse(at, 'the header name contains a control character');
    if (typeof text !== 'string') throw refuse(at, 'the header value is not a string');
    const bytes = Buffer.byteLength(text);
    if (bytes > REQUEST_LIMITS.headerValueBytes) throw refuse(at, `the header value is ${bytes} bytes: the limit is ${REQUEST_LIMITS.headerValueBytes}`);
    total += Buffer.byteLength(name) + bytes;
  }
  if (total > REQUEST_LIMITS.headersTotalBytes) throw refuse(field, `the headers are ${total} bytes: the limit is ${REQUEST_LIMITS.headersTotalBytes}`);
  return value;
}

/** A duration in ms (0 = none): a whole number of at most REQUEST_LIMITS.durationMs. */
export function durationField(value: number, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !Number.isInteger(value) || value < 0) {
    throw refuse(field, `${String(value)} is not a whole number of milliseconds >= 0`);
  }
  if (value > REQUEST_LIMITS.durationMs) throw refuse(field, `${value} ms is longer than the limit of ${REQUEST_LIMITS.durationMs} ms (366 days)`);
  return value;
}

/** A duration given as text (NATS headers): digits only. */
export function durationText(value: string | undefined, field: string): number {
  if (value === undefined || value === '') return 0;
  if (!/^\d{1,16}$/.test(value)) throw refuse(field, `${shown(value)} is not a whole number of milliseconds`);
  return durationField(Number(value), field);
}

export function maxAttemptsField(value: number, field = 'max_attempts'): number | undefined {
  if (!Number.isInteger(value) || value < 0) throw refuse(field, `${String(value)} is not a whole number >= 0`);
  if (value > REQUEST_LIMITS.maxAttempts) throw refuse(field, `${value} attempts: the limit is ${REQUEST_LIMITS.maxAttempts}`);
  return value > 0 ? value : undefined;
}

/** A Session id or an EnqueueStream seq: exact as a JavaScript number. */
export function sequenceField(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0) throw refuse(field, `${String(value)} is not a whole number from 0 to ${REQUEST_LIMITS.sequence} (2^53-1)`);
  return value;
}

export function logLinesField(value: number, field = 'lines'): number {
  if (!Number.isInteger(value) || value < 0 || value > REQUEST_LIMITS.logLines) throw refuse(field, `${String(value)} lines: the limit is ${REQUEST_LIMITS.logLines}`);
  return value;
}

// ---------------------------------------------------------------- whole requests

export interface InvokeFields {
  app: string;
  event: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /** Undefined: no routing key (the call runs on the node that received it). */
  routingKey?: string;
}

/** InvokeRequest / InvokeHeader (Invoke, InvokeStream, Session `invoke`, Broadcast). */
export function invokeFields(request: { target: string; headers?: Record<string, string> | null; timeoutMs: number; routingKey?: string }): InvokeFields {
  const { app, event } = targetField(request.target);
  return { app, event, headers: headersField(request.headers), timeoutMs: durationField(request.timeoutMs, 'timeout_ms'), routingKey: routingKeyField(request.routingKey) };
}

export type EnqueueFields = EnqueueInput;

/** EnqueueRequest (Enqueue, EnqueueStream `event`). */
export function enqueueFields(request: { target: string; data: Buffer; headers?: Record<string, string> | null; maxAttempts: number; delayMs: number; id: string }): EnqueueFields {
  const { app, event } = targetField(request.target);
  const delayMs = durationField(request.delayMs, 'delay_ms');
  return {
    app,
    event,
    data: request.data,
    headers: headersField(request.headers),
    maxAttempts: maxAttemptsField(request.maxAttempts),
    delayMs: delayMs > 0 ? delayMs : undefined,
    id: optionalId(request.id),
  };
}

type Check = (request: Record<string, any>) => void;

const appRef: Check = (r) => void nameField('app', r.name, 'name');
const startApp: Check = (r) => {
  nameField('app', r.name, 'name');
  optionalName('profile', r.profile, 'profile');
};
const profileRef: Check = (r) => void nameField('profile', r.name, 'name');

/**
 * Checks of the Deploy service's requests, by method, applied before its handler runs
 * (grpc-server.ts). UploadApp streams; its header is checked by the upload path itself.
 */
export const DEPLOY_REQUEST_CHECKS: Readonly<Record<string, Check>> = Object.freeze({
  ViewApp: appRef,
  RemoveApp: appRef,
  StopApp: appRef,
  StartApp: startApp,
  RestartApp: startApp,
  AppLogs: (r) => {
    nameField('app', r.name, 'name');
    logLinesField(r.lines);
  },
  UploadProfile: profileRef,
  ViewProfile: profileRef,
  RemoveProfile: profileRef,
  AddToRunlist: (r) => {
    nameField('app', r.app, 'app');
    optionalName('profile', r.profile, 'profile');
  },
  RemoveFromRunlist: appRef,
  ListCrashlogs: appRef,
  RemoveCrashlogs: appRef,
  ViewCrashlog: (r) => {
    nameField('app', r.app, 'app');
    idField(r.id, 'id');
  },
  ListDeadLetters: (r) => void optionalName('app', r.name, 'name'),
  Redrive: (r) => void idField(r.id, 'id'),
});
