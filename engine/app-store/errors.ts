import { EngineError, InvalidInputError } from '../errors/index.js';

/**
 * A compare-and-set write found another revision than the caller expected. Its code is
 * 'invalid_argument' until engine/errors gains a conflict code; callers branch on `reason`.
 */
export class RevisionMismatchError extends InvalidInputError {
  readonly reason = 'revision_mismatch';
  constructor(
    readonly app: string,
    readonly key: string,
    readonly expectedRevision: number,
    /** The key's revision when the write was refused (0: absent), when known. */
    readonly actualRevision?: number,
  ) {
    const actual = actualRevision === undefined ? 'another revision' : actualRevision === 0 ? 'no such key' : `revision ${actualRevision}`;
    super('invalid_argument', `key ${JSON.stringify(key)} of app "${app}": expected revision ${expectedRevision}, found ${actual}`, { field: 'expectedRevision' });
  }
}

/** A new key would take the app past `maxKeysPerApp`. */
export class AppStoreQuotaError extends InvalidInputError {
  readonly reason = 'quota_exceeded';
  constructor(
    readonly app: string,
    readonly limit: number,
  ) {
    super('invalid_argument', `app "${app}" already holds ${limit} keys, its limit (maxKeysPerApp): delete keys before adding new ones`, { field: 'maxKeysPerApp' });
  }
}

export function closedError(kind: string): EngineError {
  return new EngineError('storage_error', `the ${kind} app store is closed`);
}
