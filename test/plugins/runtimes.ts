/**
 * The four built-in runtimes, started the way the engine starts them (each plugin's launch spec)
 * under the protocol peer, for tests that check one rule across all of them.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nativePlugin from '../../plugins/native/index.js';
import nodePlugin from '../../plugins/node/index.js';
import perlPlugin from '../../plugins/perl/index.js';
import pythonPlugin from '../../plugins/python/index.js';
import type { Plugin } from '../../plugins/types.js';
import { compileSharedObject, nativeRuntimeHost } from '../helpers/cc.js';
import { startPeer, type Peer, type PeerOptions } from '../helpers/protocol-peer.js';
import { nodeRuntimeHost } from './node-runtime-build.js';

export type RuntimeName = 'node' | 'python' | 'perl' | 'native';
export const RUNTIMES: RuntimeName[] = ['node', 'python', 'perl', 'native'];

const PLUGINS: Record<RuntimeName, Plugin> = { node: nodePlugin, python: pythonPlugin, perl: perlPlugin, native: nativePlugin };

/** An app's files per runtime: the entrypoint's name and source (C for native, compiled here). */
export type AppSources = Record<RuntimeName, { entrypoint: string; source: string }>;

export interface RuntimeApps {
  dir(runtime: RuntimeName): string;
  entrypoint(runtime: RuntimeName): string;
  remove(): void;
}

/** Writes each runtime's app into a directory of its own (compiling the native one). */
export async function writeApps(sources: AppSources): Promise<RuntimeApps> {
  const root = mkdtempSync(join(tmpdir(), 'cocaine-runtimes-'));
  const dirs = {} as Record<RuntimeName, string>;
  const entrypoints = {} as Record<RuntimeName, string>;
  for (const runtime of RUNTIMES) {
    dirs[runtime] = join(root, runtime);
    mkdirSync(dirs[runtime]);
    const { entrypoint, source } = sources[runtime];
    if (runtime === 'native') {
      const file = join(dirs[runtime], entrypoint.replace(/\.so$/, '.c'));
      writeFileSync(file, source);
      await compileSharedObject(file, join(dirs[runtime], entrypoint));
    } else {
      writeFileSync(join(dirs[runtime], entrypoint), source);
      if (runtime === 'node') writeFileSync(join(dirs[runtime], 'package.json'), '{"type":"module"}');
    }
    entrypoints[runtime] = entrypoint;
  }
  nodeRuntimeHost();
  nativeRuntimeHost();
  return {
    dir: (runtime) => dirs[runtime],
    entrypoint: (runtime) => entrypoints[runtime],
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** Starts one worker of `runtime` on its app under the protocol peer. */
export async function startRuntime(runtime: RuntimeName, apps: RuntimeApps, options: Partial<PeerOptions> = {}): Promise<Peer> {
  const plugin = PLUGINS[runtime];
  const cwd = options.cwd ?? apps.dir(runtime);
  const entrypoint = options.entrypoint ?? apps.entrypoint(runtime);
  const launch = plugin.launch({
    app: 'test-app',
    workerId: 'unused',
    entrypoint,
    appDir: cwd,
    endpoint: 'unused',
    pluginDir: plugin.runtimeDir,
    environment: {},
    placement: 'host',
  });
  return startPeer({ ...options, command: launch.command, args: launch.args, cwd, entrypoint, env: { ...launch.env, ...options.env } });
}

export const text = (chunks: Buffer[]): string => Buffer.concat(chunks).toString();

export async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
