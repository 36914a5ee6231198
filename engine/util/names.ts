import { InvalidInputError } from '../errors/index.js';

export type NameKind = 'app' | 'profile' | 'event';

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Checks an app, profile or event name; returns it unchanged. Names become file and key names. */
export function validateName(kind: NameKind, name: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidInputError('invalid_argument', `${kind} name is empty`, { field: kind });
  }
  if (!NAME_PATTERN.test(name)) {
    throw new InvalidInputError(
      'invalid_argument',
      `${kind} name ${JSON.stringify(name)} is invalid: expected 1 to 64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit`,
      { field: kind },
    );
  }
  return name;
}

export function isValidName(name: string): boolean {
  return typeof name === 'string' && NAME_PATTERN.test(name);
}

export interface Target {
  app: string;
  event: string;
}

/** Splits `app@event`, validating both names. */
export function parseTarget(target: string): Target {
  if (typeof target !== 'string' || target.length === 0) {
    throw new InvalidInputError('invalid_argument', 'target is empty: expected "app@event"', { field: 'target' });
  }
  const at = target.indexOf('@');
  if (at < 0) {
    throw new InvalidInputError('invalid_argument', `target ${JSON.stringify(target)} has no '@': expected "app@event"`, { field: 'target' });
  }
  if (target.indexOf('@', at + 1) >= 0) {
    throw new InvalidInputError('invalid_argument', `target ${JSON.stringify(target)} has more than one '@': expected "app@event"`, { field: 'target' });
  }
  const app = target.slice(0, at);
  const event = target.slice(at + 1);
  if (app.length === 0) {
    throw new InvalidInputError('invalid_argument', `target ${JSON.stringify(target)} has no app before '@': expected "app@event"`, { field: 'target' });
  }
  if (event.length === 0) {
    throw new InvalidInputError('invalid_argument', `target ${JSON.stringify(target)} has no event after '@': expected "app@event"`, { field: 'target' });
  }
  return { app: validateName('app', app), event: validateName('event', event) };
}
