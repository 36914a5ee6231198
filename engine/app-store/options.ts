import { InvalidInputError } from '../errors/index.js';
import { APP_STORE_LIMITS, type AppStoreOptions, type ResolvedAppStoreOptions } from './types.js';

const RULES: Record<keyof AppStoreOptions, { min: number; max: number }> = {
  maxValueBytes: { min: 1, max: APP_STORE_LIMITS.maxValueBytesCeiling },
  maxKeysPerApp: { min: 1, max: APP_STORE_LIMITS.maxKeysPerAppCeiling },
  listPageSize: { min: 1, max: APP_STORE_LIMITS.maxListPageSizeCeiling },
  maxListPageSize: { min: 1, max: APP_STORE_LIMITS.maxListPageSizeCeiling },
};

/** Defaults filled in, every field checked (errors name it as `app-store.<field>`); a new frozen object. */
export function resolveAppStoreOptions(options: AppStoreOptions = {}): ResolvedAppStoreOptions {
  const resolved: Required<AppStoreOptions> = {
    maxValueBytes: APP_STORE_LIMITS.maxValueBytes,
    maxKeysPerApp: APP_STORE_LIMITS.maxKeysPerApp,
    listPageSize: APP_STORE_LIMITS.listPageSize,
    maxListPageSize: APP_STORE_LIMITS.maxListPageSize,
  };
  for (const field of Object.keys(RULES) as (keyof AppStoreOptions)[]) {
    const value = options[field];
    if (value === undefined) continue;
    const { min, max } = RULES[field];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new InvalidInputError('invalid_argument', `app-store option ${field} is ${JSON.stringify(value)}: expected an integer from ${min} to ${max}`, {
        field: `app-store.${field}`,
      });
    }
    resolved[field] = value;
  }
  if (resolved.listPageSize > resolved.maxListPageSize) {
    throw new InvalidInputError(
      'invalid_argument',
      `app-store option listPageSize (${resolved.listPageSize}) is above maxListPageSize (${resolved.maxListPageSize})`,
      { field: 'app-store.listPageSize' },
    );
  }
  return Object.freeze(resolved);
}
