import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A worker process as recorded on disk, so that a later engine can find what a dead one left. */
export interface PidRecord {
  pid: number;
  pgid: number;
  workerId: string;
  engineId: string;
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot): tells a recycled pid from ours. */
  startTime: string;
}

/** Start time of a live process, or undefined when there is no such process. */
export function processStartTime(pid: number): string | undefined {
  const stat = readStat(pid);
  return stat?.[19];
}

/**
 * Fields 3.. of /proc/<pid>/stat (the command name in field 2 may contain spaces and parentheses,
 * so parsing starts after its last `)`): index 0 is field 3.
 */
function readStat(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/**
 * One JSON file per worker in `<runDir>/workers/`, written at spawn and removed at exit. Killing is
 * only ever done after checking the recorded start time, so a recycled pid is never hit.
 */
export class PidRegistry {
  private readonly dir: string;

  constructor(runDir: string) {
    this.dir = join(runDir, 'workers');
  }

  record(record: PidRecord): void {
    mkdirSync(this.dir, { recursive: true });
    const path = this.path(record.workerId);
    writeFileSync(`${path}.tmp`, JSON.stringify(record));
    renameSync(`${path}.tmp`, path);
  }

  remove(workerId: string): void {
    rmSync(this.path(workerId), { force: true });
  }

  list(): PidRecord[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const records: PidRecord[] = [];
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      try {
        records.push(JSON.parse(readFileSync(join(this.dir, name), 'utf8')) as PidRecord);
      } catch {
        rmSync(join(this.dir, name), { force: true });
      }
    }
    return records;
  }

  /**
   * SIGKILLs the process group of every recorded worker of `engineId` (any engine when omitted)
   * whose leader is still the recorded process, then removes the records. When the leader is gone
   * but no process holds its pid, group members it left (started after it) are killed too.
   * Workers in `keep` (the caller's own live ones) are left alone.
   */
  cleanupOrphans(engineId?: string, keep: ReadonlySet<string> = new Set()): number {
    let killed = 0;
    for (const record of this.list()) {
      if (engineId !== undefined && record.engineId !== engineId) continue;
      if (keep.has(record.workerId)) continue;
      const startTime = processStartTime(record.pid);
      if (startTime === record.startTime) {
        if (killGroup(record.pgid)) killed++;
      } else if (startTime === undefined) {
        killed += killRemnants(record);
      }
      this.remove(record.workerId);
    }
    return killed;
  }

  private path(workerId: string): string {
    return join(this.dir, `${workerId.replace(/[^A-Za-z0-9._-]/g, '_')}.json`);
  }
}

export function killGroup(pgid: number, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** Members of a group whose leader died: a pgid cannot be reused while any member lives. */
function killRemnants(record: PidRecord): number {
  let killed = 0;
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = readStat(pid);
    // Field 5 is the process group, field 22 the start time.
    if (stat && Number(stat[2]) === record.pgid && BigInt(stat[19]) >= BigInt(record.startTime)) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // Gone meanwhile.
      }
    }
  }
  return killed;
}
