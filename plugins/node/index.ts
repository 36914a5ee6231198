/**
 * The Node.js language plugin: apps are ES modules exporting a handler per event
 * (plugins/node/README.md); workers run `node host.js` from the compiled runtime directory.
 */
import { join, posix } from 'node:path';
import { distPath, packageVersion } from '../../engine/util/paths.js';
import { PLUGIN_API_VERSION, type LaunchSpec, type Plugin, type WorkerLaunchContext } from '../types.js';

const plugin: Plugin = {
  name: 'node',
  apiVersion: PLUGIN_API_VERSION,
  version: packageVersion(),
  description: 'Node.js apps: an ES module exporting one handler per event',
  runtimeDir: distPath('plugins/node/runtime'),
  launch(context: WorkerLaunchContext): LaunchSpec {
    if (context.placement === 'container') {
      // The image's node; paths are the container's, always POSIX.
      return { command: 'node', args: [posix.join(context.pluginDir, 'host.js')], env: {} };
    }
    // The engine's own node: the same version the runtime was built and tested with.
    return { command: process.execPath, args: [join(context.pluginDir, 'host.js')], env: {} };
  },
  dockerfile(baseImage: string): string {
    return [`FROM ${baseImage}`, 'COPY . /app', 'WORKDIR /app', ''].join('\n');
  },
};

export default plugin;
