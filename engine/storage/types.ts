import type { Readable } from 'node:stream';
import type { Manifest, Profile } from '../../manifests/types.js';

/** An uploaded app: its manifest and the identity of its archive. */
export interface AppRecord {
  name: string;
  manifest: Manifest;
  /** sha256 of the archive bytes, hex: also the spool version of the unpacked app. */
  sha256: string;
  size: number;
  uploadedAt: number;
}

/** An archive spooled to a local file, with its sha256 (hex) and size measured while it was written. */
export interface ArchiveFile {
  path: string;
  sha256: string;
  size: number;
}

export interface CrashlogEntry {
  id: string;
  app: string;
  workerId: string;
  timestamp: number;
  /** Why the worker died, in words a user can act on. */
  reason: string;
  /** The worker's last output lines (stdout and stderr, in order). */
  lines: string[];
}

export type CrashlogSummary = Omit<CrashlogEntry, 'lines'>;

/** app -> profile name: the apps started when an engine starts. */
export type Runlist = Record<string, string>;

export type StorageChange =
  | { kind: 'app'; name: string; removed: boolean }
  | { kind: 'profile'; name: string; removed: boolean }
  | { kind: 'runlist' };

/**
 * Where apps, profiles, runlists and crashlogs live. Every implementation passes
 * test/contracts/storage.contract.ts.
 */
export interface Storage {
  /** `fs`, `nats`... */
  readonly kind: string;
  /** Human-readable location, e.g. the data dir or the NATS url. */
  readonly location: string;

  /**
   * Stores the app: its archive from the local file `archivePath`, streamed (no backend holds a
   * whole archive in memory), then the record. The file must match `record.sha256` and
   * `record.size`. The backend may move the file away (fs renames it into place): the caller
   * removes it afterwards if it is still there.
   */
  putApp(record: AppRecord, archivePath: string): Promise<void>;
  getApp(name: string): Promise<AppRecord | undefined>;
  /**
   * The archive bytes exactly as uploaded, as a stream read once (destroy it to stop early).
   * Rejects with NotFoundError when the app is unknown; a stream error means the stored bytes
   * could not be read or are corrupt.
   */
  openArchive(name: string): Promise<Readable>;
  listApps(): Promise<AppRecord[]>;
  /** Removes the app, its archive and its crashlogs. Returns false when it did not exist. */
  removeApp(name: string): Promise<boolean>;

  putProfile(name: string, profile: Profile): Promise<void>;
  getProfile(name: string): Promise<Profile | undefined>;
  listProfiles(): Promise<string[]>;
  removeProfile(name: string): Promise<boolean>;

  getRunlist(): Promise<Runlist>;
  addToRunlist(app: string, profile: string): Promise<Runlist>;
  removeFromRunlist(app: string): Promise<Runlist>;

  /** Stores a crashlog, keeping at most `keep` newest per app. */
  addCrashlog(entry: CrashlogEntry, keep?: number): Promise<void>;
  /** Newest first. */
  listCrashlogs(app: string): Promise<CrashlogSummary[]>;
  getCrashlog(app: string, id: string): Promise<CrashlogEntry | undefined>;
  removeCrashlogs(app: string): Promise<number>;

  /** Changes made through any node (for shared backends) or this process. Ends on close(). */
  watch(): AsyncIterable<StorageChange>;

  close(): Promise<void>;
}
