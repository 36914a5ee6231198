import { describe, expect, it } from 'vitest';
import { resolveAppStoreOptions } from '../../engine/app-store/options.js';
import { APP_STORE_LIMITS } from '../../engine/app-store/types.js';

describe('resolveAppStoreOptions', () => {
  it('fills in the documented defaults, frozen', () => {
    const resolved = resolveAppStoreOptions();
    expect(resolved).toEqual({
      maxValueBytes: APP_STORE_LIMITS.maxValueBytes,
      maxKeysPerApp: APP_STORE_LIMITS.maxKeysPerApp,
      listPageSize: APP_STORE_LIMITS.listPageSize,
      maxListPageSize: APP_STORE_LIMITS.maxListPageSize,
    });
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(Object.isFrozen(APP_STORE_LIMITS)).toBe(true);
    expect(resolveAppStoreOptions({ maxKeysPerApp: 5, listPageSize: 3, maxListPageSize: 4 })).toMatchObject({ maxKeysPerApp: 5, listPageSize: 3, maxListPageSize: 4 });
  });

  it.each([
    [{ maxValueBytes: 0 }, 'app-store.maxValueBytes'],
    [{ maxValueBytes: APP_STORE_LIMITS.maxValueBytesCeiling + 1 }, 'app-store.maxValueBytes'],
    [{ maxKeysPerApp: 1.5 }, 'app-store.maxKeysPerApp'],
    [{ maxKeysPerApp: '10' as unknown as number }, 'app-store.maxKeysPerApp'],
    [{ listPageSize: -1 }, 'app-store.listPageSize'],
    [{ maxListPageSize: APP_STORE_LIMITS.maxListPageSizeCeiling + 1 }, 'app-store.maxListPageSize'],
    [{ listPageSize: 50, maxListPageSize: 10 }, 'app-store.listPageSize'],
  ])('refuses %j naming %s', (options, field) => {
    expect(() => resolveAppStoreOptions(options)).toThrow(expect.objectContaining({ code: 'invalid_argument', field }));
  });
});
