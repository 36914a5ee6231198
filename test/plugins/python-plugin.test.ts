import { execFileSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { packageRoot } from '../../engine/util/paths.js';
import plugin from '../../plugins/python/index.js';
import { resolveInterpreter } from '../../plugins/resolve-interpreter.js';
import { PLUGIN_API_VERSION, type WorkerLaunchContext } from '../../plugins/types.js';
import { parseManifest } from '../../manifests/validate.js';
import { startPeer, type Peer } from '../helpers/protocol-peer.js';


const context = (placement: 'host' | 'container', pluginDir: string, appDir = '/app'): WorkerLaunchContext => ({
  app: 'example',
  workerId: 'w-1',
  entrypoint: 'main.py',
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
  const appDir = join(packageRoot(), 'examples', name);
  const manifest = parseManifest(readFileSync(join(appDir, 'manifest.yaml'), 'utf8'), 'manifest.yaml');
  expect(manifest.name).toBe(name);
  expect(manifest.plugin).toBe('python');
  const launch = plugin.launch(context('host', plugin.runtimeDir, appDir));
  const peer = await startPeer({ command: launch.command, args: launch.args, cwd: appDir, env: launch.env, app: name, entrypoint: manifest.entrypoint });
  peers.push(peer);
  await peer.handshake;
  return peer;
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString();

describe('resolveInterpreter', () => {
  it('finds the system python3 and perl, never a pyenv shim, once', () => {
    const python = resolveInterpreter('python3');
    // The system binary's real path (a symlink chain is followed once, not per spawn).
    expect(python).toBe(realpathSync('/usr/bin/python3'));
    expect(python).not.toContain('shims');
    expect(resolveInterpreter('python3')).toBe(python);
    const version = execFileSync(python, ['-c', 'import sys; print(sys.version_info >= (3, 9))'], { encoding: 'utf8' });
    expect(version.trim()).toBe('True');
    expect(resolveInterpreter('perl')).toBe(realpathSync('/usr/bin/perl'));
  });
});

describe('python plugin object', () => {
  it('declares its name, API version, version and the runtime directory in the package', () => {
    expect(plugin.name).toBe('python');
    expect(plugin.apiVersion).toBe(PLUGIN_API_VERSION);
    expect(plugin.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(plugin.runtimeDir).toBe(join(packageRoot(), 'plugins/python/runtime'));
  });

  it('launches the real python3 on the host and the image’s python3 in a container', () => {
    const env = (dir: string) => ({ PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1', PYTHONPATH: dir });
    expect(plugin.launch(context('host', '/opt/rt'))).toEqual({
      command: realpathSync('/usr/bin/python3'),
      args: ['-u', '-B', '/opt/rt/cocaine_worker.py'],
      env: env('/opt/rt'),
    });
    expect(plugin.launch(context('container', '/cocaine/runtime'))).toEqual({
      command: 'python3',
      args: ['-u', '-B', '/cocaine/runtime/cocaine_worker.py'],
      env: env('/cocaine/runtime'),
    });
  });

  it('writes a minimal Dockerfile', () => {
    expect(plugin.dockerfile!('python:3.11-slim')).toBe(
      'FROM python:3.11-slim\nENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1\nCOPY . /app\nWORKDIR /app\n',
    );
  });
});

describe('python examples through the plugin launch spec', () => {
  it('python-echo: plain functions echo and ping', async () => {
    const peer = await example('python-echo');
    expect((await peer.handshake).events).toEqual(['echo', 'ping']);
    expect(text((await peer.invoke('echo', 'hello')).chunks)).toBe('hello');
    expect(text((await peer.invoke('ping')).chunks)).toBe('pong');
  });

  it('python-stream: count streams N chunks, upper transforms the body as it arrives', async () => {
    const peer = await example('python-stream');
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

  it('python-wordcount: counts words split across chunks once', async () => {
    const peer = await example('python-wordcount');
    const body = 'the quick brown\nfox jumps  over\n\nthe lazy dog\n';
    const whole = JSON.parse(text((await peer.invoke('wordcount', body)).chunks));
    expect(whole).toEqual({ words: 9, lines: 4 });
    // The same text cut at every 3rd byte: words straddle chunks.
    const pieces = body.match(/[\s\S]{1,3}/g)!;
    expect(JSON.parse(text((await peer.invoke('wordcount', pieces)).chunks))).toEqual(whole);
    expect(JSON.parse(text((await peer.invoke('wordcount')).chunks))).toEqual({ words: 0, lines: 0 });
  });

  it('python-conformance: the manifest names its directory and the plugin', async () => {
    const peer = await example('python-conformance');
    expect((await peer.handshake).events).toHaveLength(16);
  });
});
