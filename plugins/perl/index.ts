/**
 * The Perl language plugin: an app is a Perl script that registers one handler per event with
 * `handler NAME => sub { ... }` (plugins/perl/README.md). Workers run the runtime's
 * `cocaine_worker.pl` (plain Perl files in the package, core modules only, Perl 5.36).
 */
import { join, posix } from 'node:path';
import { packageRoot, packageVersion } from '../../engine/util/paths.js';
import { resolveInterpreter } from '../resolve-interpreter.js';
import { PLUGIN_API_VERSION, type LaunchSpec, type Plugin, type WorkerLaunchContext } from '../types.js';

const ENTRY = 'cocaine_worker.pl';

const plugin: Plugin = {
  name: 'perl',
  apiVersion: PLUGIN_API_VERSION,
  version: packageVersion(),
  description: 'Perl 5 apps: a script registering one handler per event',
  runtimeDir: join(packageRoot(), 'plugins', 'perl', 'runtime'),
  launch(context: WorkerLaunchContext): LaunchSpec {
    if (context.placement === 'container') {
      return { command: 'perl', args: [`-I${context.pluginDir}`, posix.join(context.pluginDir, ENTRY)], env: {} };
    }
    // Resolved on the first launch, not at load: an engine without Perl still serves other plugins.
    return { command: resolveInterpreter('perl'), args: [`-I${context.pluginDir}`, join(context.pluginDir, ENTRY)], env: {} };
  },
  dockerfile(baseImage: string): string {
    return [`FROM ${baseImage}`, 'COPY . /app', 'WORKDIR /app', ''].join('\n');
  },
};

export default plugin;
