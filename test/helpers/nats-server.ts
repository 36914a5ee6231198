/**
 * Real nats-server processes for tests and benches: one server with JetStream, or a cluster, on
 * free loopback ports with private store dirs, stopped afterwards. Fails (never skips) when
 * nats-server is missing (scripts/test-deps.sh installs it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { freePort } from './redis-server.js';

interface ServerProcess {
  url: string;
  port: number;
  storeDir: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function natsServerBinary(): string {
  const found = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).stdout.trim();
  if (!found) throw new Error('nats-server is not installed (scripts/test-deps.sh installs the Debian package)');
  return found;
}

async function waitForConnect(url: string, timeoutMs = 15_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    try {
      const nc = await connect({ servers: url, reconnect: false, timeout: 1_000 });
      await nc.close();
      return;
    } catch (error) {
      if (Date.now() - started > timeoutMs) throw new Error(`nats-server at ${url} did not accept connections: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

function serverProcess(args: string[], port: number, storeDir: string): ServerProcess {
  const binary = natsServerBinary();
  let child: ChildProcess | undefined;
  const url = `nats://127.0.0.1:${port}`;
  return {
    url,
    port,
    storeDir,
    async start() {
      child = spawn(binary, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir, ...args], { stdio: 'ignore' });
      running.add(child);
      await waitForConnect(url);
    },
    async stop() {
      const current = child;
      child = undefined;
      if (!current || current.exitCode !== null) return;
      const exited = new Promise((resolve) => current.once('exit', resolve));
      current.kill('SIGTERM');
      const timer = setTimeout(() => current.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      running.delete(current);
    },
  };
}

export interface NatsServer {
  url: string;
  port: number;
  storeDir: string;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

export async function startNatsServer(): Promise<NatsServer> {
  const storeDir = mkdtempSync(join(tmpdir(), 'nats-js-'));
  const server = serverProcess([], await freePort(), storeDir);
  await server.start();
  return {
    url: server.url,
    port: server.port,
    storeDir,
    async stop() {
      await server.stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
    async restart() {
      await server.stop();
      await server.start();
    },
  };
}

export interface NatsCluster {
  urls: string[];
  servers: Array<{ url: string; stop(): Promise<void>; start(): Promise<void> }>;
  stop(): Promise<void>;
}

/** `size` servers routed into one JetStream cluster; resolves once R`size` streams can be created. */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const ports = await Promise.all(Array.from({ length: size }, () => freePort()));
  const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = clusterPorts.map((port) => `nats://127.0.0.1:${port}`).join(',');
  const name = `c${process.pid}`;
  const servers = ports.map((port, i) => {
    const storeDir = mkdtempSync(join(tmpdir(), `nats-js${i}-`));
    return serverProcess(
      ['--server_name', `${name}-n${i}`, '--cluster_name', name, '--cluster', `nats://127.0.0.1:${clusterPorts[i]}`, '--routes', routes],
      port,
      storeDir,
    );
  });
  await Promise.all(servers.map((server) => server.start()));
  const urls = servers.map((server) => server.url);
  await waitForJetStreamCluster(urls, size);
  return {
    urls,
    servers,
    async stop() {
      await Promise.all(servers.map((server) => server.stop()));
      for (const server of servers) rmSync(server.storeDir, { recursive: true, force: true });
    },
  };
}

async function waitForJetStreamCluster(urls: string[], replicas: number): Promise<void> {
  const nc = await connect({ servers: urls });
  try {
    const jsm = await jetstreamManager(nc);
    const started = Date.now();
    for (;;) {
      try {
        await jsm.streams.add({ name: 'CLUSTER_READY', subjects: ['cluster.ready'], num_replicas: replicas });
        await jsm.streams.delete('CLUSTER_READY');
        return;
      } catch (error) {
        if (Date.now() - started > 30_000) throw new Error(`JetStream cluster not ready: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  } finally {
    await nc.close();
  }
}
