/**
 * Key layout of the NATS storage buckets. KV keys are `.`-separated tokens of
 * `[-/_=.A-Za-z0-9]`; names (engine/util/names.ts) may contain `.`, which `=` (never in a name)
 * stands for. Crashlog keys are `<app>.<timestamp, 15 digits>_<id>`, so one app's crashlogs are
 * listed (and sorted newest first) from their keys alone.
 */
export const nameToKey = (name: string): string => name.replaceAll('.', '=');
export const keyToName = (key: string): string => key.replaceAll('=', '.');

/** Crashlog ids come from workers' runs: any character outside `[A-Za-z0-9-]` becomes `=XX` (hex, UTF-8). */
export function encodeId(id: string): string {
  return Array.from(Buffer.from(id, 'utf8'))
    .map((byte) => {
      const char = String.fromCharCode(byte);
      return /[A-Za-z0-9-]/.test(char) ? char : `=${byte.toString(16).padStart(2, '0')}`;
    })
    .join('');
}

export function decodeId(encoded: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    if (encoded[i] === '=') {
      bytes.push(Number.parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(encoded.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8');
}

export interface CrashlogKey {
  key: string;
  id: string;
  timestamp: number;
}

export function crashlogKey(app: string, timestamp: number, id: string): string {
  return `${nameToKey(app)}.${String(Math.max(0, Math.trunc(timestamp))).padStart(15, '0')}_${encodeId(id)}`;
}

/** Keys under `crashlogFilter(app)`, newest first (ties broken by id, like the fs backend). */
export function parseCrashlogKeys(app: string, keys: string[]): CrashlogKey[] {
  const skip = nameToKey(app).length + 1;
  return keys
    .map((key) => {
      const rest = key.slice(skip);
      const split = rest.indexOf('_');
      return { key, timestamp: Number(rest.slice(0, split)), id: decodeId(rest.slice(split + 1)) };
    })
    .sort((a, b) => b.timestamp - a.timestamp || b.id.localeCompare(a.id));
}

export const crashlogFilter = (app: string): string => `${nameToKey(app)}.>`;
