/**
 * The Python language plugin: an app is a module whose handlers are registered with
 * `@cocaine.handler` (or are its public functions), see plugins/python/README.md. Workers run
 * `python3 -u -B cocaine_worker.py` from plugins/python/runtime (standard library only, Python ≥ 3.9).
 */
import { join, posix } from 'node:path';
import { packageRoot, packageVersion } from '../../engine/util/paths.js';
import { resolveInterpreter } from '../resolve-interpreter.js';
import { PLUGIN_API_VERSION, type LaunchSpec, type Plugin, type WorkerLaunchContext } from '../types.js';

const ENTRY = 'cocaine_worker.py';

function env(pluginDir: string): Record<string, string> {
  // PYTHONPATH: apps `import cocaine` from the runtime directory.
  return { PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1', PYTHONPATH: pluginDir };
}

const plugin: Plugin = {
  name: 'python',
  apiVersion: PLUGIN_API_VERSION,
  version: packageVersion(),
  description: 'Python apps (3.9+): a module of handlers, one per event',
  runtimeDir: join(packageRoot(), 'plugins/python/runtime'),
  launch(context: WorkerLaunchContext): LaunchSpec {
    if (context.placement === 'container') {
      // The image's python3; paths are the container's, always POSIX.
      const entry = posix.join(context.pluginDir, ENTRY);
      return { command: 'python3', args: ['-u', '-B', entry], env: env(context.pluginDir) };
    }
    // Resolved once per engine (never a pyenv shim: that costs ~150 ms per worker start).
    return { command: resolveInterpreter('python3'), args: ['-u', '-B', join(context.pluginDir, ENTRY)], env: env(context.pluginDir) };
  },
  dockerfile(baseImage: string): string {
    return [`FROM ${baseImage}`, 'ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1', 'COPY . /app', 'WORKDIR /app', ''].join('\n');
  },
};

export default plugin;
