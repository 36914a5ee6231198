/**
 * Real nats-server processes for tests and benches: one server (JetStream on by default), or a
 * JetStream cluster, on free loopback ports with private store dirs, stopped afterwards. Fails
 * (never skips) when nats-server is missing (scripts/test-deps.sh installs the Debian package).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

export interface NatsServer {
  url: string;
  port: number;
  storeDir: string;
  /** Stops the server and removes its store dir. */
  stop(): Promise<void>;
  /** Stops and starts the server on the same port and store dir (JetStream data survives). */
  restart(): Promise<void>;
}

export interface NatsClusterMember {
  url: string;
  port: number;
  storeDir: string;
  /** Stops this server only; its store dir is kept for start(). */
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface NatsCluster {
  urls: string[];
  servers: NatsClusterMember[];
  /** Stops every server and removes the store dirs. */
  stop(): Promise<void>;
}

interface ServerProcess extends NatsClusterMember {
  remove(): Promise<void>;
}

const running = new Set<ChildProcess>();
const all = new Set<ServerProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A port the kernel just handed out on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port bound'))));
    });
  });
}

let binary: string | undefined;
function natsServerBinary(): string {
  binary ??= spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).stdout.trim();
  if (!binary) throw new Error('nats-server is not installed: run scripts/test-deps.sh (Debian package nats-server)');
  return binary;
}

async function waitForConnect(url: string, child: ChildProcess, log: () => string, timeoutMs = 15_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nats-server for ${url} exited (${child.exitCode ?? child.signalCode}) before accepting connections:\n${log()}`);
    }
    try {
      const nc = await connect({ servers: url, reconnect: false, timeout: 1_000 });
      await nc.close();
      return;
    } catch (error) {
      if (Date.now() - started > timeoutMs) {
        throw new Error(`nats-server at ${url} did not accept connections in ${timeoutMs} ms: ${(error as Error).message}\n${log()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

function serverProcess(port: number, storeDir: string, args: string[]): ServerProcess {
  const path = natsServerBinary();
  const url = `nats://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const server: ServerProcess = {
    url,
    port,
    storeDir,
    async start() {
      if (child) return;
      let output = '';
      const started = spawn(path, ['-a', '127.0.0.1', '-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4_000));
      started.stdout?.on('data', keep);
      started.stderr?.on('data', keep);
      child = started;
      running.add(started);
      started.once('exit', () => running.delete(started));
      try {
        await waitForConnect(url, started, () => output);
      } catch (error) {
        await server.stop();
        throw error;
      }
    },
    async stop() {
      const current = child;
      child = undefined;
      if (!current || current.exitCode !== null || current.signalCode !== null) return;
      const exited = new Promise((resolve) => current.once('exit', resolve));
      current.kill('SIGTERM');
      const timer = setTimeout(() => current.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
    async remove() {
      await server.stop();
      all.delete(server);
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
  all.add(server);
  return server;
}

/** One nats-server on a free port; with JetStream (`-js -sd <temp dir>`) unless `jetstream: false`. */
export async function startNatsServer(options: { jetstream?: boolean } = {}): Promise<NatsServer> {
  const storeDir = mkdtempSync(join(tmpdir(), 'nats-js-'));
  const args = options.jetstream === false ? [] : ['-js', '-sd', storeDir];
  const server = serverProcess(await freePort(), storeDir, args);
  await server.start();
  return {
    url: server.url,
    port: server.port,
    storeDir,
    stop: () => server.remove(),
    async restart() {
      await server.stop();
      await server.start();
    },
  };
}

/** `size` servers routed into one JetStream cluster; resolves once R`size` streams can be created. */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const ports = await Promise.all(Array.from({ length: size }, () => freePort()));
  const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = clusterPorts.map((port) => `nats://127.0.0.1:${port}`).join(',');
  const name = `c${process.pid}-${ports[0]}`;
  const servers = ports.map((port, i) => {
    const storeDir = mkdtempSync(join(tmpdir(), `nats-js${i}-`));
    const args = ['-js', '-sd', storeDir, '--server_name', `n${i}`, '--cluster_name', name];
    return serverProcess(port, storeDir, [...args, '--cluster', `nats://127.0.0.1:${clusterPorts[i]}`, '--routes', routes]);
  });
  const stop = async () => {
    await Promise.all(servers.map((server) => server.remove()));
  };
  try {
    await Promise.all(servers.map((server) => server.start()));
    await waitForJetStreamCluster(servers.map((server) => server.url), size);
  } catch (error) {
    await stop();
    throw error;
  }
  const members: NatsClusterMember[] = servers.map(({ url, port, storeDir, stop: stopOne, start }) => ({ url, port, storeDir, stop: stopOne, start }));
  return { urls: servers.map((server) => server.url), servers: members, stop };
}

async function waitForJetStreamCluster(urls: string[], replicas: number): Promise<void> {
  const nc = await connect({ servers: urls });
  try {
    const started = Date.now();
    for (;;) {
      try {
        // Until a meta leader is elected even the account info request times out.
        const jsm = await jetstreamManager(nc, { timeout: 2_000 });
        await jsm.streams.add({ name: 'CLUSTER_READY', subjects: ['cluster.ready'], num_replicas: replicas });
        await jsm.streams.delete('CLUSTER_READY');
        return;
      } catch (error) {
        if (Date.now() - started > 30_000) throw new Error(`JetStream cluster at ${urls.join(',')} not ready in 30 s: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  } finally {
    await nc.close();
  }
}

/** Stops every server (single or clustered) this process started and removes their store dirs; for afterAll. */
export async function stopAllNatsServers(): Promise<void> {
  await Promise.all([...all].map((server) => server.remove()));
}
