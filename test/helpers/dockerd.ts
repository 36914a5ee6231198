/**
 * A private Docker daemon per test file: its own data root, exec root and socket under a short
 * temporary directory (unix socket paths are limited to 108 bytes), no bridge, no iptables.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import Dockerode from 'dockerode';

export interface Dockerd {
  socketPath: string;
  docker: Dockerode;
  /** How long the daemon took to answer its first ping. */
  startMillis: number;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;

export async function startDockerd(): Promise<Dockerd> {
  const dockerd = findDockerd();
  const dir = mkdtempSync('/tmp/dkd-');
  const socketPath = join(dir, 'd.sock');
  const logPath = join(dir, 'dockerd.log');
  const log = openSync(logPath, 'a');
  const started = Date.now();
  const child = spawn(
    dockerd,
    [
      '--data-root', join(dir, 'data'),
      '--exec-root', join(dir, 'x'),
      '--host', `unix://${socketPath}`,
      '--pidfile', join(dir, 'dockerd.pid'),
      '--iptables=false',
      '--ip6tables=false',
      '--bridge=none',
      '--storage-driver=overlay2',
    ],
    { stdio: ['ignore', log, log] },
  );
  closeSync(log);
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `dockerd exited (code ${code}, signal ${signal})`));
  const docker = new Dockerode({ socketPath });
  const stop = () => stopDockerd(child, dir);
  for (;;) {
    if (exited) {
      const tail = readFileSync(logPath, 'utf8').split('\n').slice(-15).join('\n');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${exited} before answering on ${socketPath}; its log ends with:\n${tail}`);
    }
    try {
      await docker.ping();
      break;
    } catch {
      if (Date.now() - started > START_TIMEOUT_MS) {
        await stop();
        throw new Error(`dockerd did not answer on ${socketPath} within ${START_TIMEOUT_MS} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return { socketPath, docker, startMillis: Date.now() - started, stop };
}

function findDockerd(): string {
  for (const path of ['/usr/sbin/dockerd', '/usr/bin/dockerd', '/usr/local/bin/dockerd']) {
    if (spawnSync('test', ['-x', path]).status === 0) return path;
  }
  throw new Error('dockerd is not installed (expected /usr/sbin/dockerd): run scripts/test-deps.sh, which installs docker.io');
}

async function stopDockerd(child: ChildProcess, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await gone;
    clearTimeout(timer);
  }
  // Layers the daemon left mounted would make the removal fail.
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((mount) => mount.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const mount of mounts) spawnSync('umount', ['-l', mount]);
  rmSync(dir, { recursive: true, force: true });
}
