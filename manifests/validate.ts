import { Ajv, type ValidateFunction } from 'ajv';
import { parseDocument } from 'yaml';
import { InvalidInputError } from '../engine/errors/index.js';
import { parseByteSize } from './byte-size.js';
import { describeAjvErrors, type FieldProblem } from './schema-errors.js';
import manifestSchema from './manifest.schema.json' with { type: 'json' };
import profileSchema from './profile.schema.json' with { type: 'json' };
import type { EventDeclaration, Manifest, Profile } from './types.js';

export { parseByteSize } from './byte-size.js';

type DocumentKind = 'invalid_manifest' | 'invalid_profile';

export const DEFAULT_PROFILE: Readonly<Profile> = deepFreeze({
  'pool-limit': 10,
  'queue-limit': 100,
  concurrency: 10,
  'grow-threshold': 5,
  'startup-timeout': 10,
  'heartbeat-timeout': 30,
  'idle-timeout': 600,
  'termination-timeout': 5,
  'request-timeout': 86400,
  'crashlog-limit': 50,
  'crash-limit': 5,
  isolate: { type: 'process', args: {} },
});

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

let validators: { manifest: ValidateFunction; profile: ValidateFunction } | undefined;

function compiled(): { manifest: ValidateFunction; profile: ValidateFunction } {
  if (!validators) {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, verbose: true, strict: true, allowUnionTypes: true });
    ajv.addKeyword({ keyword: 'x-expected', schemaType: 'string' });
    ajv.addKeyword({ keyword: 'x-key-expected', schemaType: 'string' });
    // Byte bounds checked in code (UTF-8 bytes, which JSON Schema cannot count).
    ajv.addKeyword({ keyword: 'x-max-bytes', schemaType: 'number' });
    ajv.addKeyword({ keyword: 'x-max-total-bytes', schemaType: 'number' });
    validators = { manifest: ajv.compile(manifestSchema), profile: ajv.compile(profileSchema) };
  }
  return validators;
}

function fail(kind: DocumentKind, file: string, problems: FieldProblem[]): never {
  const message = problems.map((problem) => `${file}: ${problem.message}`).join('\n');
  throw new InvalidInputError(kind, message, { field: problems[0]?.field });
}

/** Largest manifest or profile document accepted (bytes). */
export const MAX_DOCUMENT_BYTES = 1024 * 1024;
/** Alias expansions allowed when a YAML document is turned into values (a billion-laughs guard). */
const MAX_ALIAS_COUNT = 100;

/** YAML or JSON text to a plain value; syntax errors name file:line:col. */
function parseText(text: string | Buffer, file: string, kind: DocumentKind): unknown {
  const size = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
  if (size > MAX_DOCUMENT_BYTES) {
    throw new InvalidInputError(kind, `${file}: the document is ${size} bytes, more than the ${MAX_DOCUMENT_BYTES} allowed`);
  }
  const source = typeof text === 'string' ? text : text.toString('utf8');
  const trimmed = source.trim();
  if (trimmed.startsWith('{')) {
    try {
      return JSON.parse(trimmed);
    } catch {
      // Fall through to the YAML parser, which reports line and column.
    }
  }
  const document = parseDocument(source, { uniqueKeys: true, prettyErrors: true });
  const error = document.errors[0];
  if (error) {
    const position = error.linePos?.[0];
    const where = position ? `${file}:${position.line}:${position.col}` : file;
    const detail = (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw new InvalidInputError(kind, `${where}: syntax error: ${detail}`, { cause: error });
  }
  try {
    return document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    // yaml throws a ReferenceError for an alias bomb (and for an alias to nothing).
    throw new InvalidInputError(kind, `${file}: invalid YAML: ${(error as Error).message} (at most ${MAX_ALIAS_COUNT} alias expansions)`, { cause: error });
  }
}

function requireMapping(value: unknown, file: string, kind: DocumentKind, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const got = value === null || value === undefined ? 'an empty document' : Array.isArray(value) ? 'a list' : JSON.stringify(value);
    throw new InvalidInputError(kind, `${file}: expected a ${what} as a map of fields (got ${got})`);
  }
  return value as Record<string, unknown>;
}

/** Normalises `./a//b.js` to `a/b.js`; refuses absolute paths and `..`. */
function checkEntrypoint(entrypoint: string): string | FieldProblem {
  const problem = (why: string): FieldProblem => ({
    field: 'entrypoint',
    message: `field "entrypoint" must be a relative path inside the app archive, without '..' (got ${JSON.stringify(entrypoint)}: ${why})`,
  });
  if (entrypoint.startsWith('/') || /^[A-Za-z]:[\\/]/.test(entrypoint)) return problem('absolute path');
  if (entrypoint.includes('\\')) return problem('backslash');
  if (entrypoint.includes('\0')) return problem('NUL character');
  const parts = entrypoint.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) return problem("'..' segment");
  if (parts.length === 0) return problem('no file name');
  return parts.join('/');
}

const ENV_SCHEMA = manifestSchema.properties.environment;
/** Largest environment value, UTF-8 bytes (Linux refuses one `NAME=value` over 128 KiB: spawn E2BIG). */
export const MAX_ENV_VALUE_BYTES: number = ENV_SCHEMA.additionalProperties['x-max-bytes'];
/** Largest environment altogether (every `NAME=value`), UTF-8 bytes; the kernel's whole limit is 2 MiB. */
export const MAX_ENV_TOTAL_BYTES: number = ENV_SCHEMA['x-max-total-bytes'];

function checkEnvironment(environment: Record<string, string>): FieldProblem[] {
  const problems: FieldProblem[] = [];
  let total = 0;
  for (const [key, value] of Object.entries(environment)) {
    const bytes = Buffer.byteLength(value);
    total += Buffer.byteLength(key) + bytes + 2;
    if (bytes > MAX_ENV_VALUE_BYTES) {
      problems.push({ field: `environment.${key}`, message: `field "environment.${key}" must be at most ${MAX_ENV_VALUE_BYTES} bytes (got ${bytes} bytes)` });
    }
  }
  if (problems.length === 0 && total > MAX_ENV_TOTAL_BYTES) {
    problems.push({ field: 'environment', message: `field "environment" must be at most ${MAX_ENV_TOTAL_BYTES} bytes in all (NAME=value entries; got ${total} bytes)` });
  }
  return problems;
}

/** Parses a manifest (YAML or JSON). `file` names the source in error messages. */
export function parseManifest(text: string | Buffer, file: string): Manifest {
  const raw = requireMapping(parseText(text, file, 'invalid_manifest'), file, 'invalid_manifest', 'manifest');
  return resolveManifest(raw, file);
}

/** Validates an already-parsed manifest object; returns a new, normalised one. */
export function resolveManifest(partial: unknown, file: string): Manifest {
  const value = structuredClone(requireMapping(partial, file, 'invalid_manifest', 'manifest'));
  const validate = compiled().manifest;
  const problems: FieldProblem[] = validate(value) ? [] : describeAjvErrors(validate.errors ?? []);
  if (typeof value.entrypoint === 'string' && !problems.some((problem) => problem.field === 'entrypoint')) {
    const entrypoint = checkEntrypoint(value.entrypoint);
    if (typeof entrypoint === 'string') value.entrypoint = entrypoint;
    else problems.push(entrypoint);
  }
  const environment: Record<string, string> = {};
  if (!problems.some((problem) => problem.field === 'environment' || problem.field.startsWith('environment.'))) {
    for (const [key, env] of Object.entries(value.environment as Record<string, unknown>)) environment[key] = String(env);
    problems.push(...checkEnvironment(environment));
  }
  if (problems.length > 0) fail('invalid_manifest', file, problems);
  const manifest: Manifest = {
    name: value.name as string,
    plugin: value.plugin as string,
    entrypoint: value.entrypoint as string,
    environment,
  };
  if (value.events !== undefined) {
    const events: Record<string, EventDeclaration> = {};
    for (const [name, declaration] of Object.entries(value.events as Record<string, EventDeclaration | null>)) {
      events[name] = declaration === null ? {} : { ...declaration };
    }
    manifest.events = events;
  }
  if (value.description !== undefined) manifest.description = value.description as string;
  return manifest;
}

const MEMORY_SCHEMA = profileSchema.properties.isolate.properties.args.properties.memory;
/** Smallest memory limit a worker can start under (the schema's minimum; kernels refuse tiny limits). */
export const MIN_MEMORY_BYTES: number = MEMORY_SCHEMA.anyOf[0]!.minimum as number;
const MEMORY_EXPECTED = MEMORY_SCHEMA['x-expected'];

function parseSize(value: unknown): number | undefined {
  try {
    return parseByteSize(value as string | number);
  } catch {
    return undefined;
  }
}

/** Parses a profile (YAML or JSON); missing fields get Cocaine's defaults. An empty file is all defaults. */
export function parseProfile(text: string | Buffer, file: string): Profile {
  const raw = parseText(text, file, 'invalid_profile');
  return resolveProfile(raw === null || raw === undefined ? {} : raw, file);
}

/** Validates a partial profile object and fills in defaults; returns a new object. */
export function resolveProfile(partial: unknown, file: string): Profile {
  const value = structuredClone(requireMapping(partial, file, 'invalid_profile', 'profile'));
  if (typeof value.isolate === 'string') value.isolate = { type: value.isolate };
  const validate = compiled().profile;
  const problems: FieldProblem[] = validate(value) ? [] : describeAjvErrors(validate.errors ?? []);
  const isolate = value.isolate as { type: string; args?: Record<string, unknown> } | undefined;
  const memoryChecked = !problems.some((problem) => problem.field === 'isolate.args.memory' || problem.field === 'isolate.args' || problem.field === 'isolate');
  if (memoryChecked && isolate?.args?.memory !== undefined) {
    const bytes = parseSize(isolate.args.memory);
    if (bytes !== undefined && bytes >= MIN_MEMORY_BYTES) {
      isolate.args.memory = bytes;
    } else {
      problems.push({
        field: 'isolate.args.memory',
        message: `field "isolate.args.memory" must be ${MEMORY_EXPECTED} (got ${JSON.stringify(isolate.args.memory)})`,
      });
    }
  }
  if (problems.length > 0) fail('invalid_profile', file, problems);

  const checked = value as unknown as Profile;
  if (checked['grow-threshold'] === undefined) {
    checked['grow-threshold'] = Math.max(1, Math.floor(checked['queue-limit'] / checked['pool-limit'] / 2));
  }
  // Same key order as DEFAULT_PROFILE, so stored and printed profiles read the same way.
  const profile = {} as Record<string, unknown>;
  for (const key of Object.keys(DEFAULT_PROFILE)) profile[key] = (checked as unknown as Record<string, unknown>)[key];
  const { type, args } = checked.isolate;
  profile.isolate = { type, args };
  return profile as unknown as Profile;
}
