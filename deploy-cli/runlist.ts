import { Command } from 'commander';
import { globalsOf, withClient } from './context.js';
import { output, printTable } from './output.js';

function printRunlist(runlist: Record<string, string>): void {
  printTable(['APP', 'PROFILE'], Object.entries(runlist).sort(([a], [b]) => a.localeCompare(b)));
}

export function runlistCommand(): Command {
  const runlist = new Command('runlist').description('apps started with the engine, and their profiles');

  runlist
    .command('view')
    .description('show the runlist')
    .action(async (_flags: unknown, command: Command) => {
      const apps = await withClient(command, (client) => client.viewRunlist());
      output(globalsOf(command), apps, printRunlist);
    });

  runlist
    .command('add')
    .description('add an app with a profile (or change its profile)')
    .argument('<app>')
    .argument('<profile>')
    .action(async (app: string, profile: string, _flags: unknown, command: Command) => {
      const apps = await withClient(command, (client) => client.addToRunlist(app, profile));
      output(globalsOf(command), apps, printRunlist);
    });

  runlist
    .command('remove')
    .description('remove an app from the runlist')
    .argument('<app>')
    .action(async (app: string, _flags: unknown, command: Command) => {
      const apps = await withClient(command, (client) => client.removeFromRunlist(app));
      output(globalsOf(command), apps, printRunlist);
    });

  return runlist;
}
