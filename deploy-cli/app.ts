import { Command, Option } from 'commander';
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { MANIFEST_NAMES, rootArchive } from './archive-root.js';
import { UsageError } from './errors.js';
import { globalsOf, parseInteger, withClient } from './context.js';
import { formatBytes, output, printFields, printTable } from './output.js';
import { packDirectory } from './pack.js';
import { buildAndProfile } from './docker-image.js';
import { progressBar } from './progress.js';
import { appJson } from './views.js';
import type { AppInfoMessage } from '../engine/api/messages.js';

function refuseEmpty(manifest: Buffer, what: string): Buffer {
  if (manifest.toString('utf8').trim() === '') throw new UsageError(`${what} is empty: a manifest needs at least plugin and entrypoint`, 'manifest');
  return manifest;
}

/** --manifest FILE, else manifest.{yaml,yml,json} in the directory (required there: a directory is packed here). */
async function readManifest(dir: string | undefined, file: string | undefined): Promise<{ manifest?: Buffer; manifestFile?: string }> {
  if (file !== undefined) {
    let manifest: Buffer;
    try {
      manifest = await readFile(file);
    } catch (error) {
      throw new UsageError(`cannot read --manifest ${file}: ${(error as Error).message}`, 'manifest');
    }
    return { manifest: refuseEmpty(manifest, `--manifest ${file}`), manifestFile: basename(file) };
  }
  if (dir === undefined) return {};
  for (const name of MANIFEST_NAMES) {
    const manifest = await readFile(join(dir, name)).catch(() => undefined);
    if (manifest) return { manifest: refuseEmpty(manifest, join(dir, name)), manifestFile: name };
  }
  throw new UsageError(`no manifest in ${dir}: looked for ${MANIFEST_NAMES.join(', ')} (add one, or give --manifest FILE)`, 'manifest');
}

/** The name the app will get, for the progress bar: --name, else the manifest's, else the path's. */
function appLabel(name: string | undefined, manifest: Buffer | undefined, path: string): string {
  if (name) return name;
  try {
    const parsed = manifest ? (parseYaml(manifest.toString('utf8')) as { name?: unknown } | null) : undefined;
    if (typeof parsed?.name === 'string' && parsed.name !== '') return parsed.name;
  } catch {
    // The engine reports a malformed manifest; the label falls back to the path.
  }
  return basename(path).replace(/\.(tar\.gz|tgz|tar)$/, '');
}

function printApp(app: AppInfoMessage): void {
  const view = appJson(app);
  printFields([
    ['name', view.name],
    ['state', view.state],
    ['profile', view.profile],
    ['plugin', view.plugin],
    ['entrypoint', view.entrypoint],
    ['runlist', view.inRunlist ? 'yes' : 'no'],
    ['size', formatBytes(view.size)],
    ['sha256', view.sha256],
    ['uploaded', view.uploadedAt],
    ['error', view.error],
  ]);
}

export function appCommand(): Command {
  const app = new Command('app').description('upload, list, start and stop apps');

  app
    .command('upload')
    .description('upload an app from a directory (packed here) or a .tar/.tar.gz; starts it')
    .argument('<path>', 'app directory or tarball')
    .option('-n, --name <name>', "app name (default: the manifest's name)")
    .option('-m, --manifest <file>', 'manifest file (default: manifest.{yaml,yml,json} in the directory or tarball)')
    .option('-p, --profile <profile>', 'profile to run with (default "default")')
    .option('--docker [socket]', 'build a Docker image for the app first and run it in that image (socket default: $DOCKER_HOST or /var/run/docker.sock)')
    .option('--base-image <image>', 'with --docker and no Dockerfile in the app: the image the generated Dockerfile starts FROM')
    .action(async (path: string, flags: { name?: string; manifest?: string; profile?: string; docker?: string | true; baseImage?: string }, command: Command) => {
      const info = await stat(path).catch(() => undefined);
      if (!info) throw new UsageError(`${path} does not exist: expected an app directory or a tarball`);
      const isDir = info.isDirectory();
      const manifest = await readManifest(isDir ? path : undefined, flags.manifest);
      let archive: Buffer;
      let archiveManifest: Buffer | undefined;
      if (isDir) {
        archive = await packDirectory(path);
      } else {
        const rooted = await rootArchive(await readFile(path), path, manifest.manifest !== undefined);
        archive = rooted.archive;
        archiveManifest = rooted.manifest;
        if (rooted.stripped !== undefined && !globalsOf(command).json) {
          process.stderr.write(`${path}: its files sit under "${rooted.stripped}/": uploading them from the archive's root\n`);
        }
      }
      let profile = flags.profile;
      if (flags.docker !== undefined) {
        if (!isDir) throw new UsageError('--docker builds from an app directory, not a tarball');
        const socket = flags.docker === true ? process.env.DOCKER_HOST || '/var/run/docker.sock' : flags.docker;
        const quiet = globalsOf(command).json;
        profile = await withClient(command, (client) =>
          buildAndProfile(client, path, archive, {
            docker: socket,
            baseImage: flags.baseImage,
            profile: flags.profile,
            name: flags.name,
            ...manifest,
            onLine: (line) => {
              if (!quiet) process.stderr.write(`docker: ${line}\n`);
            },
          }),
        );
      }
      const progress = progressBar(`uploading ${appLabel(flags.name, manifest.manifest ?? archiveManifest, path)}`);
      const uploaded = await withClient(command, (client) =>
        client.uploadApp({ name: flags.name, profile, archive, ...manifest, onProgress: (sent, total) => progress.update(sent, total) }),
      ).finally(() => progress.finish());
      output(globalsOf(command), appJson(uploaded), () => {
        process.stdout.write(`uploaded ${uploaded.name} (${formatBytes(uploaded.size)}), ${uploaded.state} with profile ${uploaded.profile}\n`);
      });
    });

  app
    .command('list')
    .description('list uploaded apps')
    .action(async (_flags: unknown, command: Command) => {
      const apps = await withClient(command, (client) => client.listApps());
      output(globalsOf(command), apps.map(appJson), (views) =>
        printTable(
          ['NAME', 'STATE', 'PROFILE', 'PLUGIN', 'RUNLIST', 'SIZE', 'UPLOADED'],
          views.map((v) => [v.name, v.state, v.profile, v.plugin, v.inRunlist ? 'yes' : 'no', formatBytes(v.size), v.uploadedAt]),
        ),
      );
    });

  app
    .command('view')
    .description("show an app, its state and manifest")
    .argument('<name>')
    .action(async (name: string, _flags: unknown, command: Command) => {
      const view = await withClient(command, (client) => client.viewApp(name));
      output(globalsOf(command), appJson(view), () => {
        printApp(view);
        process.stdout.write(`manifest:\n${JSON.stringify(appJson(view).manifest, null, 2)}\n`);
      });
    });

  app
    .command('remove')
    .description('stop an app and remove it with its archive and crashlogs')
    .argument('<name>')
    .action(async (name: string, _flags: unknown, command: Command) => {
      await withClient(command, (client) => client.removeApp(name));
      output(globalsOf(command), { removed: name }, () => process.stdout.write(`removed ${name}\n`));
    });

  for (const [verb, description] of [
    ['start', 'start an app (adds it to the runlist; workers spawn on the first event)'],
    ['restart', 'stop the app\'s workers and start it again, optionally with another profile'],
  ] as const) {
    app
      .command(verb)
      .description(description)
      .argument('<name>')
      .option('-p, --profile <profile>', "profile (default: the runlist's, else \"default\")")
      .action(async (name: string, flags: { profile?: string }, command: Command) => {
        const view = await withClient(command, (client) => (verb === 'start' ? client.startApp(name, flags.profile) : client.restartApp(name, flags.profile)));
        output(globalsOf(command), appJson(view), () => process.stdout.write(`${view.name} is ${view.state} with profile ${view.profile}\n`));
      });
  }

  app
    .command('stop')
    .description('stop an app: its workers terminate and it leaves the runlist')
    .argument('<name>')
    .action(async (name: string, _flags: unknown, command: Command) => {
      const view = await withClient(command, (client) => client.stopApp(name));
      output(globalsOf(command), appJson(view), () => process.stdout.write(`${view.name} is ${view.state}\n`));
    });

  app
    .command('logs')
    .description("print an app's recent worker output; --follow keeps streaming")
    .argument('<name>')
    .addOption(new Option('--lines <n>', 'last N lines').argParser(parseInteger('--lines', 1)).default(100))
    .option('-f, --follow', 'keep streaming new lines until interrupted')
    .action(async (name: string, flags: { lines: number; follow?: boolean }, command: Command) => {
      const globals = globalsOf(command);
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGINT', stop);
      try {
        await withClient(command, async (client) => {
          for await (const line of client.appLogs(name, { lines: flags.lines, follow: flags.follow === true, signal: controller.signal })) {
            if (globals.json) process.stdout.write(`${JSON.stringify(logLineJson(line))}\n`);
            else process.stdout.write(`${new Date(line.timestampMs).toISOString()} ${line.workerId} ${renderLogLine(line)}\n`);
          }
        });
      } catch (error) {
        if (!controller.signal.aborted) throw error;
      } finally {
        process.off('SIGINT', stop);
      }
    });

  return app;
}

/** A handler's structured record (stream `log`, its line is JSON: engine/services/log.ts). */
interface StructuredRecord {
  event?: string;
  trace?: string;
  level: string;
  message: string;
  fields?: Record<string, unknown>;
}

function structured(line: { stream: string; line: string }): StructuredRecord | undefined {
  if (line.stream !== 'log') return undefined;
  try {
    const record = JSON.parse(line.line) as StructuredRecord;
    return typeof record?.message === 'string' ? record : undefined;
  } catch {
    return undefined;
  }
}

/** `stdout: text`, or for a structured record `INFO message key=value (event=e trace=t)`. */
function renderLogLine(line: { stream: string; line: string }): string {
  const record = structured(line);
  if (!record) return `${line.stream}: ${line.line}`;
  const fields = Object.entries(record.fields ?? {}).map(([key, value]) => ` ${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  const context = [record.event ? `event=${record.event}` : '', record.trace ? `trace=${record.trace}` : ''].filter(Boolean).join(' ');
  return `${record.level.toUpperCase()}: ${record.message}${fields.join('')}${context ? ` (${context})` : ''}`;
}

function logLineJson<T extends { stream: string; line: string }>(line: T): T & { record?: StructuredRecord } {
  const record = structured(line);
  return record ? { ...line, record } : line;
}
