import { describe, expect, it } from 'vitest';
import { resolveEngineOptions } from '../../engine/config/options.js';

describe('max-call-depth', () => {
  it('defaults to 16; COCAINE_MAX_CALL_DEPTH and the config file set it; errors name the field', () => {
    expect(resolveEngineOptions({}).maxCallDepth).toBe(16);
    expect(resolveEngineOptions({ env: { COCAINE_MAX_CALL_DEPTH: '4' } }).maxCallDepth).toBe(4);
    expect(() => resolveEngineOptions({ env: { COCAINE_MAX_CALL_DEPTH: '5000' } })).toThrow(expect.objectContaining({ field: 'maxCallDepth' }));
    expect(() => resolveEngineOptions({ env: { COCAINE_MAX_CALL_DEPTH: 'deep' } })).toThrow(/COCAINE_MAX_CALL_DEPTH/);
  });
});
