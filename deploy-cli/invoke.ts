import { Command } from 'commander';
import { createReadStream } from 'node:fs';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { EngineClient } from '../engine/api/client.js';
import { RemoteError } from '../engine/api/status.js';
import { collectHeader, globalsOf, hintStdin, readBody, withClient, writeStdout } from './context.js';
import { UsageError } from './errors.js';
import { formatBytes } from './output.js';

interface InvokeFlags {
  data?: string;
  file?: string;
  header?: Record<string, string>;
  stream?: boolean;
  routingKey?: string;
  broadcast?: boolean;
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
    .option('-k, --routing-key <key>', 'run on the engine node this key maps to (same key, same node while membership holds)')
    .option('--broadcast', 'run on every engine node; prints one JSON line per node: {"node","ok","result"} or {"node","ok":false,"code","message"}')
    .addHelpText('after', '\nWithout --data or --file the body is read from stdin. --timeout MS sets the request deadline.')
    .action(async (target: string, flags: InvokeFlags, command: Command) => {
      const { timeout } = globalsOf(command);
      if (flags.broadcast && (flags.routingKey !== undefined || flags.stream)) throw new UsageError('--broadcast runs on every node: it takes neither --routing-key nor --stream', 'broadcast');
      const options = { headers: flags.header ?? {}, timeoutMs: timeout, routingKey: flags.routingKey };
      await withClient(command, async (client) => {
        if (flags.broadcast) {
          await broadcast(client, target, await readBody(flags), options);
          return;
        }
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

/** One JSON line per node as it settles; the first node's error is the command's failure once all are printed. */
async function broadcast(client: EngineClient, target: string, body: Buffer, options: { headers: Record<string, string>; timeoutMs?: number }): Promise<void> {
  let failure: unknown;
  for (const result of await client.broadcastCall(target, body, options)) {
    const line = result.error
      ? { node: result.node, ok: false, code: (result.error as RemoteError).code, message: result.error.message }
      : { node: result.node, ok: true, result: result.data.toString() };
    failure ??= result.error;
    await writeStdout(Buffer.from(`${JSON.stringify(line)}\n`));
  }
  if (failure) throw failure;
}
