import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../engine/errors/index.js';
import { parseTarget, validateName } from '../../engine/util/names.js';

describe('validateName', () => {
  it.each(['a', 'echo', 'my-app_2.v1', 'A'.repeat(64), '9lives'])('accepts %j', (name) => {
    expect(validateName('app', name)).toBe(name);
  });

  it.each(['', '-x', '.hidden', 'a/b', 'a b', '..', 'A'.repeat(65), 'é'])('refuses %j naming the kind', (name) => {
    try {
      validateName('profile', name);
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as InvalidInputError).code).toBe('invalid_argument');
      expect((error as InvalidInputError).message).toMatch(/^profile name /);
      return;
    }
    throw new Error('not refused');
  });
});

describe('parseTarget', () => {
  it('splits app@event', () => {
    expect(parseTarget('echo@ping')).toEqual({ app: 'echo', event: 'ping' });
  });

  it.each([
    ['', /target is empty/],
    ['echo', /has no '@'/],
    ['@ping', /has no app before '@'/],
    ['echo@', /has no event after '@'/],
    ['a@b@c', /more than one '@'/],
    ['a/b@c', /^app name "a\/b" is invalid/],
    ['a@b c', /^event name "b c" is invalid/],
  ])('refuses %j', (target, message) => {
    expect(() => parseTarget(target)).toThrow(message);
  });
});
