#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { packageVersion } from '../engine/util/paths.js';
import { appCommand } from './app.js';
import { DEFAULT_ENGINE, parseInteger } from './context.js';
import { crashlogCommand } from './crashlog.js';
import { EXIT, exitCodeFor, reportFor, writeError } from './errors.js';
import { eventCommands } from './events.js';
import { infoCommand } from './info.js';
import { invokeCommand } from './invoke.js';
import { profileCommand } from './profile.js';
import { runlistCommand } from './runlist.js';
import { traceCommand } from './trace.js';

const NAME = 'cocaine-deploy';

/** --json anywhere on the command line: errors are JSON too, even those found before options are parsed. */
const JSON_ERRORS = process.argv.slice(2).includes('--json');

function fail(error: unknown, engine: string, code: number): never {
  writeError(NAME, reportFor(error, engine), JSON_ERRORS);
  process.exit(code);
}

const program = new Command()
  .name(NAME)
  .description('Deploy apps to cocaine-engine and call them.')
  .version(packageVersion())
  .option('-e, --engine <host:port>', `engine address (env COCAINE_ENGINE, default ${DEFAULT_ENGINE})`)
  .option('--json', 'machine-readable output')
  .addOption(new Option('-t, --timeout <ms>', 'deadline of each request in ms (invoke: the call deadline)').argParser(parseInteger('--timeout', 1)))
  .addHelpText('after', '\nExit codes: 0 ok, 1 usage or bad input, 2 not found, 3 unavailable or overloaded, 4 deadline, 5 the app failed, 6 internal.')
  .showSuggestionAfterError(true)
  .configureOutput({
    // Commander's own usage errors: one line in our format.
    outputError: (text) => {
      const message = text.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim();
      writeError(NAME, { code: 'invalid_argument', message }, JSON_ERRORS);
    },
  })
  .exitOverride();

for (const command of [appCommand(), profileCommand(), runlistCommand(), crashlogCommand(), invokeCommand(), ...eventCommands(), infoCommand(), traceCommand()]) {
  program.addCommand(command);
}
// Groups without a subcommand print their help (on stderr) and exit 1; so do unknown subcommands.
function inherit(parent: Command): void {
  for (const command of parent.commands) {
    command.exitOverride().configureOutput(program.configureOutput()).configureHelp({ showGlobalOptions: true });
    inherit(command);
  }
}
inherit(program);

// A closed pipe (`cocaine-deploy app list | head`) is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(EXIT.ok);
  fail(error, '', EXIT.internal);
});

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version were printed: exit 0; usage errors were printed by outputError.
      process.exit(error.exitCode === 0 ? EXIT.ok : EXIT.usage);
    }
    const engine = (program.opts().engine as string | undefined) ?? process.env.COCAINE_ENGINE ?? DEFAULT_ENGINE;
    fail(error, engine, exitCodeFor(error));
  }
}

void main();
