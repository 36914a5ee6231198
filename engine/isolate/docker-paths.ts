import { existsSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where things appear inside a worker container. */
export const CONTAINER_APP_DIR = '/app';
export const CONTAINER_SOCKET_DIR = '/run/cocaine';
/** Host directories under the package root appear below this, at the same relative layout. */
export const CONTAINER_PACKAGE_DIR = '/opt/cocaine';
/** A plugin runtime from outside the package (a third-party plugin directory). */
export const CONTAINER_PLUGIN_DIR = '/opt/cocaine/plugin';

/**
 * The installed package's root: this file is `<root>/engine/isolate/` in the sources and
 * `<root>/dist/engine/isolate/` once built.
 */
export function defaultPackageRoot(): string {
  const up = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return basename(up) === 'dist' && existsSync(join(up, '..', 'package.json')) ? dirname(up) : up;
}

export interface PluginMount {
  /** The runtime directory as the worker sees it. */
  containerDir: string;
  /** Host directory to mount read-only, and where. */
  bind: { host: string; container: string };
}

/**
 * A runtime inside the package (e.g. `<root>/dist/plugins/node/runtime`) imports its siblings by
 * relative path (`../../../engine/protocol/frames.js`), so the whole top-level directory holding it
 * (`dist`) is mounted at `/opt/cocaine/dist`, keeping the layout. Anything else is mounted alone.
 */
export function pluginMount(hostPluginDir: string, packageRoot: string): PluginMount {
  const dir = resolve(hostPluginDir);
  const rel = relative(resolve(packageRoot), dir);
  if (rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep) && rel.split(sep)[0] !== 'node_modules') {
    const top = rel.split(sep)[0]!;
    return {
      containerDir: join(CONTAINER_PACKAGE_DIR, ...rel.split(sep)),
      bind: { host: join(resolve(packageRoot), top), container: join(CONTAINER_PACKAGE_DIR, top) },
    };
  }
  return { containerDir: CONTAINER_PLUGIN_DIR, bind: { host: dir, container: CONTAINER_PLUGIN_DIR } };
}

export function containerEndpoint(workerId: string): string {
  return `${CONTAINER_SOCKET_DIR}/${workerId}.sock`;
}
