import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import plugin from '../../plugins/node/index.js';
import { PLUGIN_API_VERSION, type WorkerLaunchContext } from '../../plugins/types.js';
import { packageRoot } from '../../engine/util/paths.js';
import { startPeer, type Peer } from '../helpers/protocol-peer.js';
import { nodeRuntimeHost } from './node-runtime-build.js';

const context = (placement: 'host' | 'container', pluginDir: string, appDir = '/app'): WorkerLaunchContext => ({
  app: 'example',
  workerId: 'w-1',
  entrypoint: 'index.js',
  appDir,
  endpoint: '/run/w-1.sock',
  pluginDir,
  environment: {},
  placement,
});

const peers: Peer[] = [];
afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

/** Starts an example app the way the engine does: with the plugin's launch spec. */
async function example(name: string): Promise<Peer> {
  nodeRuntimeHost();
  const appDir = join(packageRoot(), 'examples', name);
  const launch = plugin.launch(context('host', plugin.runtimeDir, appDir));
  const peer = await startPeer({ command: launch.command, args: launch.args, cwd: appDir, env: launch.env, app: name });
  peers.push(peer);
  await peer.handshake;
  return peer;
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString();

describe('node plugin object', () => {
  it('declares its name, API version and the compiled runtime directory', () => {
    expect(plugin.name).toBe('node');
    expect(plugin.apiVersion).toBe(PLUGIN_API_VERSION);
    expect(plugin.runtimeDir).toBe(join(packageRoot(), 'dist/plugins/node/runtime'));
    expect(plugin.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('launches the engine’s node on the host and the image’s node in a container', () => {
    expect(plugin.launch(context('host', '/opt/rt'))).toEqual({ command: process.execPath, args: ['/opt/rt/host.js'], env: {} });
    expect(plugin.launch(context('container', '/cocaine/runtime'))).toEqual({ command: 'node', args: ['/cocaine/runtime/host.js'], env: {} });
  });

  it('writes a minimal Dockerfile', () => {
    expect(plugin.dockerfile!('node:20-slim')).toBe('FROM node:20-slim\nCOPY . /app\nWORKDIR /app\n');
  });
});

describe('node examples through the plugin launch spec', () => {
  it('node-echo: echo and ping', async () => {
    const peer = await example('node-echo');
    expect((await peer.handshake).events?.sort()).toEqual(['echo', 'ping']);
    expect(text((await peer.invoke('echo', 'hello')).chunks)).toBe('hello');
    expect(text((await peer.invoke('ping')).chunks)).toBe('pong');
  });

  it('node-stream: count streams N chunks, upper transforms the body as it arrives', async () => {
    const peer = await example('node-stream');
    const counted = await peer.invoke('count', '5');
    expect(counted.chunks.map(String)).toEqual(['0\n', '1\n', '2\n', '3\n', '4\n']);
    const stream = peer.invokeStream('upper');
    const iterator = stream.chunks[Symbol.asyncIterator]();
    stream.write('abc');
    expect(String((await iterator.next()).value)).toBe('ABC');
    stream.write('xyz');
    stream.end();
    expect(String((await iterator.next()).value)).toBe('XYZ');
    expect((await iterator.next()).done).toBe(true);
  });

  it('node-slow: sleep honours cancellation, fail, log, env, pid', async () => {
    const peer = await example('node-slow');
    expect(text((await peer.invoke('sleep', '20')).chunks)).toBe('slept 20');
    const sleeping = peer.invokeStream('sleep');
    sleeping.write('60000');
    sleeping.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    peer.cancel(sleeping.channel);
    expect((await peer.invoke('fail', 'x')).error).toEqual({ code: 'handler', message: 'boom: x' });
    expect(text((await peer.invoke('log')).chunks)).toBe('logged');
    expect(text((await peer.invoke('pid')).chunks)).toBe(String(peer.pid));
    const env = JSON.parse(text((await peer.invoke('env')).chunks)) as Record<string, string>;
    expect(env.COCAINE_APP).toBe('node-slow');
    expect(env.NODE_OPTIONS).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(peer.stdout).toContain('log line to stdout');
    expect(peer.stderr).toContain('log line to stderr');
  });

  it('node-slow: crash exits 3, abort dies by SIGABRT, stop is stopped', async () => {
    const crashing = await example('node-slow');
    const crashed = await crashing.invoke('crash');
    expect(crashed.error?.code).toBe('internal');
    expect(await crashing.exited).toEqual({ code: 3, signal: null });
    expect(crashing.stderr).toContain('crashing on purpose');

    const aborting = await example('node-slow');
    void aborting.invoke('abort');
    expect((await aborting.exited).signal).toBe('SIGABRT');

    const stopping = await example('node-slow');
    void stopping.invoke('stop');
    await waitFor(() => /\) T /.test(procStat(stopping.pid)));
  });

  it('node-slow: hang stops the heartbeats', async () => {
    nodeRuntimeHost();
    const appDir = join(packageRoot(), 'examples', 'node-slow');
    const launch = plugin.launch(context('host', plugin.runtimeDir, appDir));
    const peer = await startPeer({ command: launch.command, args: launch.args, cwd: appDir, heartbeatMs: 20 });
    peers.push(peer);
    await peer.handshake;
    await waitFor(() => peer.heartbeats >= 3);
    void peer.invoke('hang');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const before = peer.heartbeats;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(peer.heartbeats).toBe(before);
  });
});

function procStat(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return '';
  }
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
