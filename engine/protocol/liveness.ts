/**
 * The worker side of liveness (docs/worker-protocol.md, "Liveness"), shared by the Node-based
 * runtimes (node, native). Imports nothing but node:fs; Linux reads /proc, elsewhere the process
 * group is left to the engine.
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { WorkerEnv } from './worker-env.js';

/** The part of a socket the liveness rules need (node:net's Socket fits). */
export interface EngineSocket {
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
}

/** Process group id of `pid` from /proc (undefined when it cannot be read). */
function groupOf(pid: number | 'self'): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pgrp = Number(fields[2]);
    return Number.isInteger(pgrp) ? pgrp : undefined;
  } catch {
    return undefined;
  }
}

/**
 * SIGKILLs every other process of this worker's process group (what a handler started: shells,
 * `sleep`s, helpers), so none outlives the worker. Only when the worker leads its group, as every
 * isolate starts it: a runtime started inside someone else's group must not kill that group.
 * Returns how many processes it signalled.
 */
export function killOwnGroup(): number {
  const self = process.pid;
  if (groupOf('self') !== self) return 0;
  let killed = 0;
  // A member may fork while we look: repeat until a pass finds nobody (bounded).
  for (let pass = 0; pass < 5; pass++) {
    let found = 0;
    let entries: string[];
    try {
      entries = readdirSync('/proc');
    } catch {
      return killed;
    }
    for (const entry of entries) {
      const code = entry.charCodeAt(0);
      if (code < 48 || code > 57) continue;
      const pid = Number(entry);
      if (pid === self || groupOf(pid) !== self) continue;
      try {
        process.kill(pid, 'SIGKILL');
        found++;
      } catch {
        // exited meanwhile
      }
    }
    killed += found;
    if (found === 0) break;
  }
  return killed;
}

/** Exits with `code`, taking the worker's process group down first (docs/worker-protocol.md). */
export function leave(code: number): never {
  killOwnGroup();
  process.exit(code);
}

/**
 * Heartbeats every COCAINE_HEARTBEAT_MS; leaves (exit 0, group killed) when the engine's socket
 * closes; leaves with 2 after COCAINE_DISOWN_MS without a frame. The silence is measured only once
 * the engine has spoken (it sends nothing before it accepted the handshake: a slow or starved
 * engine that has not read the handshake yet is not a dead one; its death closes the socket, and
 * its startup-timeout bounds the wait), and never while data waits unread: the check runs after
 * the event loop's I/O phase. Returns the function to call whenever data arrives (a flag, so the
 * read path never calls Date.now()).
 */
export function keepAlive(runtime: string, env: WorkerEnv, socket: EngineSocket, sendHeartbeat: () => void): () => void {
  let spoken = false;
  let heard = false;
  let silentSince = 0;
  socket.on('error', (error) => {
    process.stderr.write(`${runtime}: engine socket error: ${error.message}\n`);
  });
  // No worker outlives its engine, nor anything it started.
  socket.on('close', () => leave(0));
  setInterval(sendHeartbeat, env.heartbeatMs);
  const disownIfStillSilent = (): void => {
    if (heard) return;
    process.stderr.write(`${runtime}: nothing from the engine for ${env.disownMs} ms, exiting\n`);
    leave(2);
  };
  setInterval(
    () => {
      if (!spoken) return;
      const now = Date.now();
      if (heard) {
        heard = false;
        silentSince = now;
      } else if (now - silentSince >= env.disownMs) {
        // Timers run before I/O: after a stall (a busy machine, a handler blocking the loop) the
        // engine's frames may be waiting in the socket. Decide after the poll phase read them.
        setImmediate(disownIfStillSilent);
      }
    },
    Math.max(10, Math.min(1000, env.disownMs / 4)),
  );
  return () => {
    heard = true;
    spoken = true;
  };
}
