import { InvalidInputError } from '../errors/index.js';
import { validateName } from '../util/names.js';
import { RevisionMismatchError } from './errors.js';
import { APP_STORE_LIMITS, type AppStoreListOptions, type ResolvedAppStoreOptions } from './types.js';

/** Printable ASCII without space: one byte per character, so string order is byte order. */
const KEY_CHARS = /^[\x21-\x7e]*$/;

function checkKeyText(field: 'key' | 'prefix' | 'after', text: unknown, allowEmpty: boolean): string {
  if (typeof text !== 'string') {
    throw new InvalidInputError('invalid_argument', `${field} must be a string, got ${typeof text}`, { field });
  }
  if (text.length === 0 && !allowEmpty) {
    throw new InvalidInputError('invalid_argument', `${field} is empty: expected 1 to ${APP_STORE_LIMITS.maxKeyLength} characters`, { field });
  }
  if (text.length > APP_STORE_LIMITS.maxKeyLength) {
    throw new InvalidInputError('invalid_argument', `${field} is ${text.length} characters long: the limit is ${APP_STORE_LIMITS.maxKeyLength}`, { field });
  }
  if (!KEY_CHARS.test(text)) {
    throw new InvalidInputError('invalid_argument', `${field} ${JSON.stringify(text)} is invalid: expected printable ASCII characters without space (0x21 to 0x7E)`, {
      field,
    });
  }
  return text;
}

/** App name (engine/util/names.ts rules, field `app`) and key (field `key`). */
export function validateAppKey(app: string, key: string): void {
  validateName('app', app);
  checkKeyText('key', key, false);
}

export function validateValue(key: string, value: Buffer | Uint8Array, options: ResolvedAppStoreOptions): Buffer {
  if (!(value instanceof Uint8Array)) {
    throw new InvalidInputError('invalid_argument', `value of key ${JSON.stringify(key)} must be bytes (Buffer or Uint8Array)`, { field: 'value' });
  }
  if (value.byteLength > options.maxValueBytes) {
    throw new InvalidInputError(
      'invalid_argument',
      `value of key ${JSON.stringify(key)} is ${value.byteLength} bytes: the limit is ${options.maxValueBytes} (maxValueBytes)`,
      { field: 'value' },
    );
  }
  // A copy: the caller may reuse its buffer while the write is in flight.
  return Buffer.from(value);
}

/** undefined, or an integer >= `min` (0 for put: "must not exist"; 1 for delete). */
export function validateExpectedRevision(revision: number | undefined, min: 0 | 1): number | undefined {
  if (revision === undefined) return undefined;
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < min) {
    throw new InvalidInputError(
      'invalid_argument',
      `expectedRevision is ${JSON.stringify(revision)}: expected an integer >= ${min}${min === 1 ? ' (a delete needs the revision of an existing key)' : ' (0: the key must not exist)'}`,
      { field: 'expectedRevision' },
    );
  }
  return revision;
}

/** Throws RevisionMismatchError unless `actual` (0 = absent) is what the caller expected. */
export function checkExpected(app: string, key: string, expected: number | undefined, actual: number): void {
  if (expected !== undefined && expected !== actual) throw new RevisionMismatchError(app, key, expected, actual);
}

export interface ListQuery {
  prefix: string;
  after?: string;
  limit: number;
}

export function validateList(app: string, prefix: string | undefined, options: AppStoreListOptions | undefined, limits: ResolvedAppStoreOptions): ListQuery {
  validateName('app', app);
  const query: ListQuery = { prefix: checkKeyText('prefix', prefix ?? '', true), limit: limits.listPageSize };
  if (options?.after !== undefined) query.after = checkKeyText('after', options.after, false);
  if (options?.limit !== undefined) {
    const limit = options.limit;
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > limits.maxListPageSize) {
      throw new InvalidInputError('invalid_argument', `limit is ${JSON.stringify(limit)}: expected an integer from 1 to ${limits.maxListPageSize} (maxListPageSize)`, {
        field: 'limit',
      });
    }
    query.limit = limit;
  }
  return query;
}

/** The page of `query` from all of an app's keys, sorted or not (NATS lists them unsorted). */
export function pageOf(keys: Iterable<string>, query: ListQuery): { keys: string[]; next?: string } {
  const matching: string[] = [];
  for (const key of keys) {
    if (key.startsWith(query.prefix) && (query.after === undefined || key > query.after)) matching.push(key);
  }
  matching.sort();
  const page = matching.slice(0, query.limit);
  return matching.length > query.limit ? { keys: page, next: page.at(-1) } : { keys: page };
}
