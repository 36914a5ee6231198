import { Command } from 'commander';
import { globalsOf, withClient } from './context.js';
import { output, printFields, printTable } from './output.js';
import { crashlogJson } from './views.js';

export function crashlogCommand(): Command {
  const crashlog = new Command('crashlog').description("dead workers' last output");

  crashlog
    .command('list')
    .description("list an app's crashlogs, newest first")
    .argument('<app>')
    .action(async (app: string, _flags: unknown, command: Command) => {
      const entries = (await withClient(command, (client) => client.listCrashlogs(app))).map((entry) => crashlogJson(entry, false));
      output(globalsOf(command), entries, () => printTable(['ID', 'TIME', 'WORKER', 'REASON'], entries.map((e) => [e.id, e.timestamp, e.workerId, e.reason])));
    });

  crashlog
    .command('view')
    .description('show one crashlog with its output lines')
    .argument('<app>')
    .argument('<id>')
    .action(async (app: string, id: string, _flags: unknown, command: Command) => {
      const entry = crashlogJson(await withClient(command, (client) => client.viewCrashlog(app, id)), true);
      output(globalsOf(command), entry, () => {
        printFields([
          ['id', entry.id],
          ['app', entry.app],
          ['worker', entry.workerId],
          ['time', entry.timestamp],
          ['reason', entry.reason],
        ]);
        process.stdout.write(`${(entry.lines ?? []).join('\n')}\n`);
      });
    });

  crashlog
    .command('remove')
    .description("remove all of an app's crashlogs")
    .argument('<app>')
    .action(async (app: string, _flags: unknown, command: Command) => {
      await withClient(command, (client) => client.removeCrashlogs(app));
      output(globalsOf(command), { removed: app }, () => process.stdout.write(`removed crashlogs of ${app}\n`));
    });

  return crashlog;
}
