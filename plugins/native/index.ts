/**
 * The native plugin: apps are shared objects implementing the C ABI of
 * plugins/native/include/cocaine/worker.h (plugins/native/README.md). Workers run the host
 * (`node host.js` from the compiled runtime directory), which loads the app's `.so` through koffi.
 */
import { join, posix } from 'node:path';
import { distPath, packageVersion } from '../../engine/util/paths.js';
import { PLUGIN_API_VERSION, type LaunchSpec, type Plugin, type WorkerLaunchContext } from '../types.js';

/**
 * One libuv threadpool thread: the host barely uses the pool (the app runs on its own app thread,
 * runtime/app-thread.ts), so a worker keeps its thread count and memory down.
 */
const HOST_ENV: Readonly<Record<string, string>> = Object.freeze({ UV_THREADPOOL_SIZE: '1' });

const plugin: Plugin = {
  name: 'native',
  apiVersion: PLUGIN_API_VERSION,
  version: packageVersion(),
  description: 'Native apps: a shared object (.so) implementing the cocaine/worker.h C ABI',
  runtimeDir: distPath('plugins/native/runtime'),
  launch(context: WorkerLaunchContext): LaunchSpec {
    if (context.placement === 'container') {
      return { command: 'node', args: [posix.join(context.pluginDir, 'host.js')], env: { ...HOST_ENV } };
    }
    return { command: process.execPath, args: [join(context.pluginDir, 'host.js')], env: { ...HOST_ENV } };
  },
  dockerfile(baseImage: string): string {
    // The shared object is built for the image's C library: compile it inside the image when it
    // has a compiler, or ship one built for the same libc.
    return [`FROM ${baseImage}`, 'COPY . /app', 'WORKDIR /app', ''].join('\n');
  },
};

export default plugin;
