import { Command } from 'commander';
import { createReadStream } from 'node:fs';
import { collectHeader, globalsOf, readBody, withClient, writeStdout } from './context.js';
import { UsageError } from './errors.js';

interface InvokeFlags {
  data?: string;
  file?: string;
  header?: Record<string, string>;
  stream?: boolean;
}

function streamedBody(flags: InvokeFlags): AsyncIterable<Buffer | string> | Iterable<Buffer | string> {
  if (flags.data !== undefined && flags.file !== undefined) throw new UsageError('give either --data or --file, not both');
  if (flags.data !== undefined) return [flags.data];
  if (flags.file !== undefined) return createReadStream(flags.file);
  return process.stdin;
}

export function invokeCommand(): Command {
  return new Command('invoke')
    .description('call app@event and write the result to stdout as it streams back (binary-safe)')
    .argument('<target>', 'app@event')
    .option('-d, --data <string>', 'request body')
    .option('-f, --file <file>', 'request body from a file')
    .option('-H, --header <key=value>', 'request header (repeatable)', collectHeader)
    .option('-s, --stream', 'stream the body (stdin or --file) to the app as it is read (InvokeStream)')
    .addHelpText('after', '\nWithout --data or --file the body is read from stdin. --timeout MS sets the request deadline.')
    .action(async (target: string, flags: InvokeFlags, command: Command) => {
      const { timeout } = globalsOf(command);
      const options = { headers: flags.header ?? {}, timeoutMs: timeout };
      await withClient(command, async (client) => {
        const result = flags.stream ? client.invokeStream(target, streamedBody(flags), options) : client.invoke(target, await readBody(flags), options);
        for await (const chunk of result) await writeStdout(chunk);
      });
    });
}
