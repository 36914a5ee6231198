/**
 * The `AppStore` seam: small per-app key-value storage a handler reads and writes while it runs.
 * Every app has its own key space; no call can reach another app's keys. Implementations (beside
 * this file: `lmdb.ts`, `nats.ts`) pass test/contracts/app-store.contract.ts. See docs/app-store.md.
 */

/**
 * The limits, in one place. `maxKeyLength` and the key charset are fixed (they shape the key
 * encodings); the rest are defaults that `resolveAppStoreOptions()` lets an operator change within
 * the ceilings below.
 */
export const APP_STORE_LIMITS = Object.freeze({
  /** Keys are 1 to 256 characters of printable ASCII without space (0x21 to 0x7E). */
  maxKeyLength: 256,
  /** Default largest value, in bytes. */
  maxValueBytes: 256 * 1024,
  /** Ceiling for `maxValueBytes`: a value is one NATS message, and NATS' default max_payload is 1 MiB. */
  maxValueBytesCeiling: 1024 * 1024,
  /** Default number of keys one app may hold; so one app holds at most maxKeysPerApp × maxValueBytes. */
  maxKeysPerApp: 1_000,
  /** Ceiling for `maxKeysPerApp`. */
  maxKeysPerAppCeiling: 100_000,
  /** Keys in a list page when the caller gives no `limit`. */
  listPageSize: 100,
  /** Largest `limit` a caller may ask for. */
  maxListPageSize: 1_000,
  /** Ceiling for `maxListPageSize`. */
  maxListPageSizeCeiling: 10_000,
});

/** What an operator may set; every field is optional (defaults in APP_STORE_LIMITS). */
export interface AppStoreOptions {
  maxValueBytes?: number;
  maxKeysPerApp?: number;
  listPageSize?: number;
  maxListPageSize?: number;
}

export type ResolvedAppStoreOptions = Readonly<Required<AppStoreOptions>>;

export interface AppStoreEntry {
  value: Buffer;
  /** Positive integer; see `AppStore.put`. */
  revision: number;
}

export interface AppStoreWriteOptions {
  /**
   * Compare-and-set: the write happens only if the key's revision is this one now, else it fails
   * with RevisionMismatchError. 0 means "the key must not exist" (put only).
   */
  expectedRevision?: number;
}

export interface AppStoreListOptions {
  /** Keys per page: 1 to `maxListPageSize`, default `listPageSize`. */
  limit?: number;
  /** Only keys after this one (exclusive): pass the previous page's `next`. */
  after?: string;
}

export interface AppStorePage {
  /** Keys in ascending byte order. */
  keys: string[];
  /** Set when more keys may follow: pass it as `after` to get the next page. */
  next?: string;
}

export interface AppStore {
  /** `lmdb`, `nats`... */
  readonly kind: string;
  /** Human-readable location: a directory or NATS urls. */
  readonly location: string;
  readonly options: ResolvedAppStoreOptions;

  get(app: string, key: string): Promise<AppStoreEntry | undefined>;
  /**
   * Stores the value and returns its new revision. Revisions grow strictly with every write of a
   * key, and a key deleted and created again never gets a revision it had before.
   * Fails with AppStoreQuotaError when the key is new and the app holds `maxKeysPerApp` keys.
   */
  put(app: string, key: string, value: Buffer | Uint8Array, options?: AppStoreWriteOptions): Promise<number>;
  /** Removes the key; false when it did not exist (with `expectedRevision`: RevisionMismatchError instead). */
  delete(app: string, key: string, options?: AppStoreWriteOptions): Promise<boolean>;
  /** One page of the app's keys that start with `prefix` ('' = all). */
  list(app: string, prefix?: string, options?: AppStoreListOptions): Promise<AppStorePage>;
  /** Waits for writes in flight; later calls fail with `storage_error`. */
  close(): Promise<void>;
}
