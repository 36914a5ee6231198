/**
 * NATS KV keys of the app store: `<app token>.<key token>`. A token keeps `[A-Za-z0-9_/-]` and
 * writes every other byte as `=` and two lowercase hex digits, so a token never holds a `.`:
 * the first `.` ends the app part, `<app token>.*` matches exactly one app's keys, and distinct
 * (app, key) pairs give distinct KV keys. The code is prefix-preserving: a key starts with a
 * prefix exactly when its token starts with the prefix's token.
 */
const PLAIN = /[A-Za-z0-9_/-]/;

export function encodeToken(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += PLAIN.test(char) ? char : `=${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

export function decodeToken(token: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === '=') {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(token.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8');
}

export const entryKey = (app: string, key: string): string => `${encodeToken(app)}.${encodeToken(key)}`;

/** Filter of every key of one app (keys are one token after the app's). */
export const appFilter = (app: string): string => `${encodeToken(app)}.*`;

/** The app store's key part of a KV key under appFilter(app). */
export const keyOf = (kvKey: string): string => decodeToken(kvKey.slice(kvKey.indexOf('.') + 1));
