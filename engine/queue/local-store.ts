import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { EngineError } from '../errors/index.js';
import type { EventState } from './types.js';

/** One event as persisted. Records are immutable once written: every change writes a new object. */
export interface StoredEvent {
  id: string;
  app: string;
  event: string;
  /** Dropped once COMPLETED (nothing reads it again); kept while the event may still run. */
  data?: Buffer;
  headers: Record<string, string>;
  state: EventState;
  attempts: number;
  maxAttempts: number;
  lastError?: string;
  result?: Buffer;
  resultTruncated: boolean;
  createdAt: number;
  updatedAt: number;
  /** When the event may run next (PENDING) or ran (PROCESSING). */
  notBefore: number;
  /** Enqueue order, the FIFO tie-break among events due at the same millisecond. */
  seq: number;
  /** When it became COMPLETED or FAILED: its key in the `done` and `dead` indexes. */
  doneAt?: number;
}

type DoneKey = [number, string];

/**
 * The LMDB layout of the local queue, one environment with four databases committed together:
 * - `events`: id → StoredEvent (reads see our own writes before they commit);
 * - `active`: id → app, every PENDING or PROCESSING event (what `open` loads back into memory);
 * - `done`: [doneAt, id] → app, every COMPLETED or FAILED event (retention pruning walks it oldest first);
 * - `dead`: [doneAt, id] → app, FAILED events only (dead letters, newest first).
 * Commits are fsynced before their promise resolves (`overlappingSync: false`; `noSync` stays off).
 */
export class LocalStore {
  private writeError: unknown;
  /**
   * Writes not yet committed, so reads see them at once (null = removed). Ours rather than lmdb's
   * `cache` option, whose entries were seen to outlive a committed remove.
   */
  private readonly unsettled = new Map<string, StoredEvent | null>();

  private constructor(
    private readonly root: RootDatabase,
    private readonly events: Database<StoredEvent, string>,
    private readonly active: Database<string, string>,
    private readonly done: Database<string, DoneKey>,
    private readonly dead: Database<string, DoneKey>,
  ) {}

  static open(dir: string): LocalStore {
    try {
      mkdirSync(dir, { recursive: true });
      const root = open({ path: dir, overlappingSync: false, noSync: false, maxDbs: 8 });
      return new LocalStore(
        root,
        root.openDB<StoredEvent, string>({ name: 'events' }),
        root.openDB<string, string>({ name: 'active' }),
        root.openDB<string, DoneKey>({ name: 'done' }),
        root.openDB<string, DoneKey>({ name: 'dead' }),
      );
    } catch (error) {
      throw new EngineError('queue_error', `cannot open the queue store in ${dir}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Throws if an earlier background write failed: the store can no longer be trusted to persist. */
  checkHealthy(): void {
    if (this.writeError !== undefined) {
      throw new EngineError('queue_error', `the queue store failed to write: ${(this.writeError as Error).message}`, { cause: this.writeError });
    }
  }

  get(id: string): StoredEvent | undefined {
    const unsettled = this.unsettled.get(id);
    if (unsettled !== undefined) return unsettled ?? undefined;
    return this.events.get(id);
  }

  private putEvent(record: StoredEvent): Promise<unknown> {
    return this.settleLater(record.id, record, this.events.put(record.id, record));
  }

  private removeEvent(id: string): Promise<unknown> {
    return this.settleLater(id, null, this.events.remove(id));
  }

  private settleLater(id: string, value: StoredEvent | null, write: Promise<unknown>): Promise<unknown> {
    this.unsettled.set(id, value);
    const settle = (): void => {
      if (this.unsettled.get(id) === value) this.unsettled.delete(id);
    };
    write.then(settle, settle);
    return write;
  }

  /** A new event; resolves once committed and synced. */
  async insert(record: StoredEvent): Promise<void> {
    await Promise.all([this.putEvent(record), this.active.put(record.id, record.app)]);
  }

  /** A change between PENDING and PROCESSING; committed in the background, the promise says when. */
  update(record: StoredEvent): Promise<void> {
    const write = this.putEvent(record).then(() => undefined);
    this.track(write);
    return write.catch(() => undefined);
  }

  /** The event became COMPLETED or FAILED (`record.doneAt` set); committed in the background. */
  finish(record: StoredEvent): void {
    const key: DoneKey = [record.doneAt!, record.id];
    this.track(this.putEvent(record));
    this.track(this.active.remove(record.id));
    this.track(this.done.put(key, record.app));
    if (record.state === 'FAILED') this.track(this.dead.put(key, record.app));
  }

  /** A FAILED event back to PENDING (redrive); resolves once committed. */
  async revive(previous: StoredEvent, record: StoredEvent): Promise<void> {
    const key: DoneKey = [previous.doneAt!, previous.id];
    await Promise.all([
      this.putEvent(record),
      this.active.put(record.id, record.app),
      this.done.remove(key),
      this.dead.remove(key),
    ]);
  }

  /** Drops an `active` entry whose event is missing or already finished (repair at open). */
  forgetActive(id: string): void {
    this.track(this.active.remove(id));
  }

  activeIds(): string[] {
    return Array.from(this.active.getKeys());
  }

  /** FAILED events, newest first. */
  deadLetters(app?: string): StoredEvent[] {
    const out: StoredEvent[] = [];
    for (const { key, value } of this.dead.getRange({ reverse: true })) {
      if (app !== undefined && value !== app) continue;
      const record = this.get(key[1]);
      if (record?.state === 'FAILED') out.push(record);
    }
    return out;
  }

  /** Removes COMPLETED/FAILED events that finished before `cutoff`; returns how many. */
  async prune(cutoff: number, batch = 10_000): Promise<number> {
    let total = 0;
    for (;;) {
      const keys = Array.from(this.done.getKeys({ end: [cutoff], limit: batch }));
      if (keys.length === 0) return total;
      // Plain writes issued in one event turn commit as one transaction. (lmdb's callback
      // `transaction()` never resolves with lmdb 3.5.6 on Node 20 here, so it is not used.)
      const writes: Promise<unknown>[] = [];
      for (const key of keys) {
        const record = this.get(key[1]);
        // A redriven event is active again under the same id: keep it.
        if (record && (record.state === 'COMPLETED' || record.state === 'FAILED') && record.doneAt === key[0]) {
          writes.push(this.removeEvent(key[1]));
        }
        writes.push(this.done.remove(key), this.dead.remove(key));
      }
      await Promise.all(writes);
      total += keys.length;
      if (keys.length < batch) return total;
    }
  }

  /** Resolves once every write issued so far is committed. */
  async committed(): Promise<void> {
    await this.root.committed;
  }

  async close(): Promise<void> {
    await this.root.committed;
    await this.root.close();
  }

  private track(write: Promise<unknown>): void {
    write.then(
      () => undefined,
      (error: unknown) => {
        this.writeError ??= error;
      },
    );
  }
}
