import { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { globalsOf, withClient } from './context.js';
import { UsageError } from './errors.js';
import { output, printTable } from './output.js';
import { profileJson } from './views.js';

export function profileCommand(): Command {
  const profile = new Command('profile').description('pool settings shared by apps');

  profile
    .command('upload')
    .description('upload (or replace) a profile from a YAML or JSON file')
    .argument('<name>')
    .argument('<file>')
    .action(async (name: string, file: string, _flags: unknown, command: Command) => {
      const content = await readFile(file).catch((error: Error) => {
        throw new UsageError(`cannot read ${file}: ${error.message}`);
      });
      const uploaded = await withClient(command, (client) => client.uploadProfile(name, content, basename(file)));
      output(globalsOf(command), profileJson(uploaded), (view) => process.stdout.write(`${JSON.stringify(view.profile, null, 2)}\n`));
    });

  profile
    .command('list')
    .description('list profiles')
    .action(async (_flags: unknown, command: Command) => {
      const names = await withClient(command, (client) => client.listProfiles());
      output(globalsOf(command), names, () => printTable(['NAME'], names.map((name) => [name])));
    });

  profile
    .command('view')
    .description('show a profile with defaults applied')
    .argument('<name>')
    .action(async (name: string, _flags: unknown, command: Command) => {
      const view = profileJson(await withClient(command, (client) => client.viewProfile(name)));
      output(globalsOf(command), view, () => process.stdout.write(`${JSON.stringify(view.profile, null, 2)}\n`));
    });

  profile
    .command('remove')
    .description('remove a profile')
    .argument('<name>')
    .action(async (name: string, _flags: unknown, command: Command) => {
      await withClient(command, (client) => client.removeProfile(name));
      output(globalsOf(command), { removed: name }, () => process.stdout.write(`removed profile ${name}\n`));
    });

  return profile;
}
