import { InvalidInputError } from '../engine/errors/index.js';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

const SIZE_PATTERN = /^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:([kmgt])(?:i?b)?|(b))?\s*$/i;

/**
 * Bytes from a size such as `64M`, `1.5G`, `512k`, `1024` (binary units, as Docker reads them:
 * `M` = `MB` = `MiB` = 2^20). Integers pass through. Throws on anything else or on a result < 1.
 */
export function parseByteSize(value: string | number): number {
  let bytes: number;
  if (typeof value === 'number') {
    bytes = value;
  } else {
    const match = typeof value === 'string' ? SIZE_PATTERN.exec(value) : null;
    if (!match) {
      throw new InvalidInputError('invalid_argument', `size ${JSON.stringify(value)} is invalid: expected bytes or a size such as "64M" or "1G"`);
    }
    const unit = (match[2] ?? match[3] ?? '').toLowerCase();
    bytes = Math.floor(Number(match[1]) * (UNITS[unit] as number));
  }
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new InvalidInputError('invalid_argument', `size ${JSON.stringify(value)} is invalid: expected a whole number of bytes >= 1`);
  }
  return bytes;
}
