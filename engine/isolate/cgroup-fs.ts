import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UnavailableError } from '../errors/index.js';
import { cpuQuota, weightToShares } from './limits.js';
import type { ResourceLimits } from './types.js';

/** The controllers a worker's limits use. */
export const CONTROLLERS = ['memory', 'cpu', 'pids'] as const;
export type Controller = (typeof CONTROLLERS)[number];

/**
 * Where `cocaine/` lives. v1: one base directory per mounted controller; v2: one base directory in
 * the unified hierarchy, with the controllers enabled down to it.
 */
export interface CgroupLayout {
  version: 1 | 2;
  /** The hierarchy's mount point (v2: the unified root; v1: the directory of controller mounts). */
  root: string;
  /** Base directories (each ends in `/cocaine`): v1 one per controller present, v2 exactly one. */
  bases: Array<{ controller: Controller | 'unified'; dir: string }>;
  /** Controllers available for limits. */
  available: ReadonlySet<Controller>;
}

/**
 * Detects the hierarchy under `root`. v2 only when `root` itself is the unified mount (it has
 * `cgroup.controllers`); a hybrid host with an empty `unified/` next to v1 controllers is v1.
 *
 * `parent` is the cgroup (path inside each hierarchy) under which `cocaine/` is created. By
 * default v1 uses the engine's own cgroup of each controller, so whatever bounds the engine (a
 * systemd slice, a sandbox) also bounds its workers; v2 uses the root, since the engine's own
 * cgroup holds processes and so may not enable controllers for children.
 */
export function detectLayout(root = '/sys/fs/cgroup', parent?: string): CgroupLayout {
  if (existsSync(join(root, 'cgroup.controllers'))) {
    const dir = join(root, parent ?? '/', 'cocaine');
    const enabled = readWords(join(root, 'cgroup.controllers'));
    const available = new Set(CONTROLLERS.filter((controller) => enabled.includes(controller)));
    return { version: 2, root, bases: [{ controller: 'unified', dir }], available };
  }
  const own = ownCgroups();
  const bases: CgroupLayout['bases'] = [];
  for (const controller of CONTROLLERS) {
    const mount = join(root, controller);
    if (!existsSync(join(mount, 'cgroup.procs'))) continue;
    bases.push({ controller, dir: join(mount, parent ?? own.get(controller) ?? '/', 'cocaine') });
  }
  if (bases.length === 0) {
    throw new UnavailableError('spawn_failed', `no cgroup hierarchy found under ${root}: expected cgroup v2 (${root}/cgroup.controllers) or v1 controllers (${root}/memory, ${root}/cpu, ${root}/pids)`);
  }
  return { version: 1, root, bases, available: new Set(bases.map((base) => base.controller as Controller)) };
}

/** The process's own cgroup path per v1 controller, from /proc/self/cgroup. */
function ownCgroups(): Map<string, string> {
  const paths = new Map<string, string>();
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const match = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!match) continue;
    for (const controller of match[1]!.split(',')) if (controller) paths.set(controller, match[2]!);
  }
  return paths;
}

/** Segments of `cocaine/<engineId>/<app>/<workerId>` below a base; unsafe characters replaced. */
export function workerSegments(engineId: string, app: string, workerId: string): string[] {
  return [engineId, app, workerId].map((part) => part.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_'));
}

/**
 * Creates the worker's cgroup(s) and writes its limits. Returns the directories (one per base).
 * Refuses limits whose controller is not available rather than running unbounded.
 */
export function createWorkerCgroup(layout: CgroupLayout, segments: string[], limits: ResourceLimits): string[] {
  const needs: Array<[Controller, string]> = [];
  if (limits.memoryBytes !== undefined) needs.push(['memory', 'isolate.args.memory']);
  if (limits.cpus !== undefined) needs.push(['cpu', 'isolate.args.cpus']);
  if (limits.cpuWeight !== undefined) needs.push(['cpu', 'isolate.args.cpu-weight']);
  if (limits.pids !== undefined) needs.push(['pids', 'isolate.args.pids']);
  for (const [controller, field] of needs) {
    if (!layout.available.has(controller)) {
      throw new UnavailableError('spawn_failed', `cannot apply ${field}: the cgroup ${controller} controller is not available on this host`);
    }
  }
  const dirs: string[] = [];
  for (const base of layout.bases) {
    if (layout.version === 2) enableControllers(layout.root, base.dir, segments, layout.available);
    const dir = join(base.dir, ...segments);
    mkdirSync(dir, { recursive: true });
    dirs.push(dir);
    if (layout.version === 2) writeV2Limits(dir, limits);
    else writeV1Limits(base.controller as Controller, dir, limits);
  }
  return dirs;
}

/** v2: every cgroup from the hierarchy root down to the worker's parent delegates the controllers. */
function enableControllers(root: string, base: string, segments: string[], available: ReadonlySet<Controller>): void {
  const chain: string[] = [];
  for (let dir = join(base, ...segments.slice(0, -1)); dir.length > root.length; dir = join(dir, '..')) chain.unshift(dir);
  for (const cgroup of [root, ...chain]) {
    mkdirSync(cgroup, { recursive: true });
    const enabled = readWords(join(cgroup, 'cgroup.subtree_control'));
    for (const controller of available) {
      if (!enabled.includes(controller)) write(cgroup, 'cgroup.subtree_control', `+${controller}`);
    }
  }
}

function writeV2Limits(dir: string, limits: ResourceLimits): void {
  if (limits.memoryBytes !== undefined) {
    write(dir, 'memory.max', String(limits.memoryBytes));
    if (existsSync(join(dir, 'memory.swap.max'))) write(dir, 'memory.swap.max', '0');
  }
  if (limits.cpuWeight !== undefined) write(dir, 'cpu.weight', String(limits.cpuWeight));
  if (limits.cpus !== undefined) {
    const { periodUs, quotaUs } = cpuQuota(limits.cpus);
    write(dir, 'cpu.max', `${quotaUs} ${periodUs}`);
  }
  if (limits.pids !== undefined) write(dir, 'pids.max', String(limits.pids));
}

function writeV1Limits(controller: Controller, dir: string, limits: ResourceLimits): void {
  if (controller === 'memory' && limits.memoryBytes !== undefined) {
    write(dir, 'memory.limit_in_bytes', String(limits.memoryBytes));
    // memsw (memory + swap) must be >= the memory limit, so it is written after it.
    if (existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) write(dir, 'memory.memsw.limit_in_bytes', String(limits.memoryBytes));
  }
  if (controller === 'cpu') {
    if (limits.cpuWeight !== undefined) write(dir, 'cpu.shares', String(weightToShares(limits.cpuWeight)));
    if (limits.cpus !== undefined) {
      const { periodUs, quotaUs } = cpuQuota(limits.cpus);
      write(dir, 'cpu.cfs_period_us', String(periodUs));
      write(dir, 'cpu.cfs_quota_us', String(quotaUs));
    }
  }
  if (controller === 'pids' && limits.pids !== undefined) write(dir, 'pids.max', String(limits.pids));
}

function write(dir: string, file: string, value: string): void {
  try {
    writeFileSync(join(dir, file), value);
  } catch (error) {
    throw new UnavailableError('spawn_failed', `cannot write ${value} to ${join(dir, file)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}

/** Why the kernel stopped the worker, from the cgroup's event counters (undefined: no limit hit). */
export function limitReason(layout: CgroupLayout, dirs: string[], limits: ResourceLimits, formatMemory: (bytes: number) => string): string | undefined {
  let oom = false;
  let pidsHit = false;
  for (const dir of dirs) {
    if (layout.version === 2) {
      oom ||= counter(join(dir, 'memory.events'), 'oom_kill') > 0;
      pidsHit ||= counter(join(dir, 'pids.events'), 'max') > 0;
    } else {
      // memory.oom_control has had an oom_kill count since Linux 4.13.
      oom ||= counter(join(dir, 'memory.oom_control'), 'oom_kill') > 0;
      pidsHit ||= counter(join(dir, 'pids.events'), 'max') > 0;
    }
  }
  if (oom) return `out of memory (limit ${limits.memoryBytes !== undefined ? formatMemory(limits.memoryBytes) : 'unknown'})`;
  if (pidsHit) return `process limit reached (pids limit ${limits.pids ?? 'unknown'}): a fork failed`;
  return undefined;
}

function counter(file: string, key: string): number {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return 0;
  }
  const match = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

/** Pids in a cgroup directory (empty when it is gone). */
export function cgroupPids(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Sends `signal` to every process in the cgroup (a forking worker is caught in later rounds). */
export function signalCgroup(dir: string, signal: NodeJS.Signals): number {
  if (signal === 'SIGKILL' && existsSync(join(dir, 'cgroup.kill'))) {
    try {
      writeFileSync(join(dir, 'cgroup.kill'), '1');
      return cgroupPids(dir).length;
    } catch {
      // Fall back to one by one.
    }
  }
  const pids = cgroupPids(dir);
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
  return pids.length;
}

/**
 * Kills everything in the cgroup and removes it, with the app and engine directories above it
 * when they are empty. Never throws: a cgroup that will not go is left for cleanupOrphans.
 */
export async function removeCgroup(dir: string, levelsAbove = 2): Promise<boolean> {
  const deadline = Date.now() + 3000;
  for (;;) {
    signalCgroup(dir, 'SIGKILL');
    try {
      rmdirSync(dir);
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') break;
      // EBUSY while killed processes are still being torn down.
      if (Date.now() > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  let up = dir;
  for (let i = 0; i < levelsAbove; i++) {
    up = join(up, '..');
    try {
      rmdirSync(up);
    } catch {
      break;
    }
  }
  return true;
}

/** Leaf worker cgroups under `<base>/<engine>/<app>/<worker>` (every engine when `engineId` is undefined). */
export function listWorkerCgroups(base: string, engineId?: string): Array<{ engineId: string; workerId: string; dir: string }> {
  const found: Array<{ engineId: string; workerId: string; dir: string }> = [];
  for (const engine of subdirs(base)) {
    if (engineId !== undefined && engine !== workerSegments(engineId, 'a', 'w')[0]) continue;
    for (const app of subdirs(join(base, engine))) {
      for (const worker of subdirs(join(base, engine, app))) found.push({ engineId: engine, workerId: worker, dir: join(base, engine, app, worker) });
    }
  }
  return found;
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
  } catch {
    return [];
  }
}

function readWords(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}
