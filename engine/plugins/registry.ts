import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PLUGIN_API_VERSION, type Plugin } from '../../plugins/types.js';
import type { PluginInfo } from '../api/facade.js';
import { InvalidInputError, NotFoundError } from '../errors/index.js';

const BUILTIN = ['node', 'python', 'perl', 'native'] as const;

interface Loaded {
  plugin: Plugin;
  source: string;
}

/**
 * Language plugins by name: the built-in ones, plus third-party plugins found in configured
 * directories (each subdirectory an ES module exporting a Plugin as default) or npm packages.
 * A plugin whose apiVersion differs from ours is refused at load with a clear error.
 */
export class PluginRegistry {
  private readonly plugins = new Map<string, Loaded>();
  readonly problems: string[] = [];

  static async load(options: { directories?: string[]; packages?: string[] } = {}): Promise<PluginRegistry> {
    const registry = new PluginRegistry();
    for (const name of BUILTIN) {
      await registry.add(new URL(`../../plugins/${name}/index.js`, import.meta.url).href, 'builtin');
    }
    for (const directory of options.directories ?? []) {
      const root = resolve(directory);
      if (!existsSync(root)) {
        registry.problems.push(`plugin directory ${root} does not exist`);
        continue;
      }
      for (const entry of readdirSync(root)) {
        const dir = join(root, entry);
        if (!statSync(dir).isDirectory()) continue;
        const main = pluginEntry(dir);
        if (main) await registry.add(pathToFileURL(main).href, dir);
      }
    }
    const require = createRequire(join(process.cwd(), 'package.json'));
    for (const name of options.packages ?? []) {
      try {
        await registry.add(pathToFileURL(require.resolve(name)).href, `npm:${name}`);
      } catch (error) {
        registry.problems.push(`plugin package ${name}: ${(error as Error).message}`);
      }
    }
    return registry;
  }

  private async add(url: string, source: string): Promise<void> {
    let plugin: Plugin;
    try {
      const module = (await import(url)) as { default?: unknown };
      const exported = typeof module.default === 'function' ? await (module.default as () => unknown)() : module.default;
      plugin = checkPlugin(exported, source);
    } catch (error) {
      this.problems.push(`${source}: ${(error as Error).message}`);
      return;
    }
    this.plugins.set(plugin.name, { plugin, source });
  }

  get(name: string): Plugin {
    const loaded = this.plugins.get(name);
    if (!loaded) {
      throw new NotFoundError('not_found', `unknown plugin "${name}" (available: ${[...this.plugins.keys()].join(', ')})`);
    }
    return loaded.plugin;
  }

  has(name: string): boolean {
    return this.plugins.has(name);
  }

  list(): PluginInfo[] {
    return [...this.plugins.values()].map(({ plugin, source }) => ({
      name: plugin.name,
      version: plugin.version,
      apiVersion: plugin.apiVersion,
      source,
    }));
  }
}

function pluginEntry(dir: string): string | undefined {
  const manifest = join(dir, 'package.json');
  if (existsSync(manifest)) {
    const main = (JSON.parse(readFileSync(manifest, 'utf8')) as { main?: string }).main ?? 'index.js';
    return join(dir, main);
  }
  for (const candidate of ['index.js', 'index.mjs']) if (existsSync(join(dir, candidate))) return join(dir, candidate);
  return undefined;
}

function checkPlugin(value: unknown, source: string): Plugin {
  const plugin = value as Partial<Plugin> | undefined;
  const fail = (what: string) => new InvalidInputError('invalid_argument', `plugin from ${source}: ${what}`);
  if (!plugin || typeof plugin !== 'object') throw fail('the module does not export a plugin object as default');
  if (typeof plugin.name !== 'string' || !/^[a-z][a-z0-9_-]*$/.test(plugin.name)) throw fail('"name" must be a lowercase identifier');
  if (plugin.apiVersion !== PLUGIN_API_VERSION) {
    throw fail(`"${plugin.name}" targets plugin API ${String(plugin.apiVersion)}, this engine speaks ${PLUGIN_API_VERSION}`);
  }
  if (typeof plugin.launch !== 'function') throw fail(`"${plugin.name}" has no launch() function`);
  if (typeof plugin.runtimeDir !== 'string') throw fail(`"${plugin.name}" has no runtimeDir`);
  return { version: '0.0.0', ...plugin } as Plugin;
}
