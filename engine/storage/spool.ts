import { createHash } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from '../errors/index.js';
import { pathExists } from '../util/atomic-file.js';
import { validateName } from '../util/names.js';
import { extractArchive, type ArchiveLimits } from './tarball.js';
import type { AppRecord, Storage } from './types.js';

const SHA256 = /^[0-9a-f]{64}$/;

/** Extractions in progress in this process, by target dir: concurrent callers share one. */
const inFlight = new Map<string, Promise<string>>();

/**
 * The app's archive unpacked at `<spoolRoot>/<name>/<sha256>/`, extracted once and reused.
 * A fresh extraction removes the app's other versions.
 */
export function ensureSpooled(storage: Storage, record: AppRecord, spoolRoot: string, limits?: Partial<ArchiveLimits>): Promise<string> {
  let name: string;
  try {
    name = validateName('app', record.name);
  } catch (error) {
    return Promise.reject(error);
  }
  if (!SHA256.test(record.sha256)) {
    return Promise.reject(new EngineError('storage_error', `app ${name}: record has no valid sha256 (got ${JSON.stringify(record.sha256)})`));
  }
  const dir = join(spoolRoot, name, record.sha256);
  const pending = inFlight.get(dir);
  if (pending) return pending;
  const work = spool(storage, name, record.sha256, spoolRoot, dir, limits).finally(() => inFlight.delete(dir));
  inFlight.set(dir, work);
  return work;
}

async function spool(storage: Storage, name: string, sha256: string, spoolRoot: string, dir: string, limits?: Partial<ArchiveLimits>): Promise<string> {
  // Extraction renames a finished tree into place, so an existing dir is a complete one.
  if (await pathExists(dir)) return dir;
  // Streamed from storage into the temp tree, hashed on the way; a mismatch discards the tree.
  const archive = await storage.openArchive(name);
  const hash = createHash('sha256');
  const verify = (): void => {
    const actual = hash.digest('hex');
    if (actual !== sha256) {
      throw new EngineError('storage_error', `app ${name}: stored archive has sha256 ${actual}, the record says ${sha256} (re-upload the app)`);
    }
  };
  try {
    await extractArchive(archive, dir, limits, { onChunk: (chunk) => hash.update(chunk), beforeCommit: verify });
  } catch (error) {
    // Another process may have spooled the same version meanwhile.
    if (error instanceof EngineError && error.code === 'storage_error' && (await pathExists(dir))) return dir;
    throw error;
  }
  await removeOtherVersions(join(spoolRoot, name), sha256);
  return dir;
}

async function removeOtherVersions(appDir: string, keep: string): Promise<void> {
  for (const entry of await readdir(appDir)) {
    if (entry === keep) continue;
    // `.<sha>.extract-*` is a temp dir; leave those of extractions still running here.
    const tempOf = /^\.([0-9a-f]{64})\.extract-/.exec(entry)?.[1];
    if (tempOf !== undefined && inFlight.has(join(appDir, tempOf))) continue;
    if (tempOf === undefined && inFlight.has(join(appDir, entry))) continue;
    await rm(join(appDir, entry), { recursive: true, force: true });
  }
}

/** Removes every spooled version of an app. */
export async function removeSpool(spoolRoot: string, name: string): Promise<void> {
  await rm(join(spoolRoot, validateName('app', name)), { recursive: true, force: true });
}
