/**
 * The plugin API: everything a language plugin needs, nothing of the engine's internals.
 * A plugin is data plus a runtime: how to start a worker for an app, and the runtime library
 * that speaks the worker protocol (docs/worker-protocol.md) inside the worker.
 */
export const PLUGIN_API_VERSION = 1;

export interface WorkerLaunchContext {
  app: string;
  workerId: string;
  /** Entrypoint from the manifest, relative to appDir. */
  entrypoint: string;
  /** Paths as the worker sees them (they differ inside containers). */
  appDir: string;
  endpoint: string;
  pluginDir: string;
  /** The manifest's environment. */
  environment: Record<string, string>;
  /** Where the worker runs: `host` (process, cgroup) or `container` (docker). */
  placement: 'host' | 'container';
}

export interface LaunchSpec {
  command: string;
  args: string[];
  /** Extra environment for the runtime (the engine adds the COCAINE_* variables and the manifest's). */
  env: Record<string, string>;
}

export interface Plugin {
  name: string;
  /** Must equal PLUGIN_API_VERSION or the plugin is refused at load. */
  apiVersion: number;
  version: string;
  description?: string;
  /** Host directory holding the runtime; mounted read-only into containers. */
  runtimeDir: string;
  launch(context: WorkerLaunchContext): LaunchSpec;
  /** Dockerfile lines to build an image for an app of this plugin on `baseImage` (docker isolate). */
  dockerfile?(baseImage: string): string;
}

export type PluginFactory = () => Plugin | Promise<Plugin>;
