import { UnavailableError } from '../errors/index.js';
import type { Isolate, SpawnSpec, WorkerProcess } from '../isolate/types.js';
import { setLongTimeout, type LongTimer } from '../util/timers.js';
import type { EarlyConnection } from './early-connection.js';

/**
 * Spawns through the isolate with startup-timeout counted from the moment the isolate starts the
 * process (`onStart`: after a slow `docker create`, before `docker start`), not from the spawn
 * request. Resolves with the process and the handshake deadline. When the timeout passes while
 * spawn() is still pending and the worker has said nothing, the start fails with startup_timeout
 * and the process, should it come later, is killed.
 */
export function spawnWithin(
  isolate: Isolate,
  spec: SpawnSpec,
  timeoutMs: number,
  early: EarlyConnection,
): Promise<{ process: WorkerProcess; deadline: number }> {
  return new Promise((resolve, reject) => {
    let deadline: number | undefined;
    let timer: LongTimer | undefined;
    let done = false;
    const onStart = (): void => {
      if (deadline !== undefined) return;
      deadline = Date.now() + timeoutMs;
      timer = setLongTimeout(() => {
        // A worker already talking was started: its handle is on the way.
        if (done || early.heard) return;
        done = true;
        const what = `worker ${spec.workerId.slice(0, 8)} of app "${spec.app}"`;
        reject(new UnavailableError('startup_timeout', `${what} did not start within the startup-timeout of ${timeoutMs / 1000}s (the ${isolate.type} isolate had not started it)`));
      }, timeoutMs);
    };
    isolate.spawn({ ...spec, onStart }).then(
      (process) => {
        timer?.clear();
        if (done) {
          process.signal('SIGKILL');
          return;
        }
        done = true;
        resolve({ process, deadline: deadline ?? Date.now() + timeoutMs });
      },
      (error: unknown) => {
        timer?.clear();
        if (done) return;
        done = true;
        reject(error);
      },
    );
  });
}
