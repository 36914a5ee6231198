import { Command } from 'commander';
import { createReadStream } from 'node:fs';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { RemoteError } from '../engine/api/status.js';
import { collectHeader, globalsOf, hintStdin, readBody, withClient, writeStdout } from './context.js';
import { UsageError } from './errors.js';
import { formatBytes } from './output.js';

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
  hintStdin('the body');
  return process.stdin;
}

/**
 * A unary body over the gRPC message limit is refused by grpc-js itself (this client's send limit or
 * the engine's receive limit: RESOURCE_EXHAUSTED without the engine's code): point to --stream.
 */
function tooLargeHint(error: unknown, bodyBytes: number): UsageError | undefined {
  if (!(error instanceof RemoteError) || error.fromEngine || error.status !== GrpcStatus.RESOURCE_EXHAUSTED) return undefined;
  return new UsageError(
    `the request body (${formatBytes(bodyBytes)}) is larger than one gRPC message may be (${error.message}); ` +
      'send it with --stream, which sends the body in chunks as it is read',
    'body',
  );
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
        if (flags.stream) {
          for await (const chunk of client.invokeStream(target, streamedBody(flags), options)) await writeStdout(chunk);
          return;
        }
        const body = await readBody(flags);
        try {
          for await (const chunk of client.invoke(target, body, options)) await writeStdout(chunk);
        } catch (error) {
          throw tooLargeHint(error, body.length) ?? error;
        }
      });
    });
}
