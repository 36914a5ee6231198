import { Command } from 'commander';
import { spanOfMessage } from '../engine/api/trace-service.js';
import { NotFoundError } from '../engine/errors/index.js';
import { traceIdArgument } from '../engine/trace/context.js';
import { renderTraceJson, renderTraceText } from '../engine/trace/render.js';
import { buildTree } from '../engine/trace/tree.js';
import { globalsOf, withClient } from './context.js';
import { printJson } from './output.js';

/** `cocaine-deploy trace ID [--json]`: one trace's call tree (docs/tracing.md). */
export function traceCommand(): Command {
  return new Command('trace')
    .description("show one trace's steps as a tree: timings, outcomes, nodes, workers")
    .argument('<id>', 'trace id (32 hex digits) or a whole traceparent')
    .addHelpText('after', '\nUnknown or expired traces exit 2. Traces are kept 15 minutes after their last step.')
    .action(async (id: string, _flags: unknown, command: Command) => {
      const traceId = traceIdArgument(id);
      const globals = globalsOf(command);
      const reply = await withClient(command, (client) => client.trace(traceId));
      const tree = buildTree(reply.traceId || traceId, reply.spans.map(spanOfMessage), reply.dropped);
      if (!tree) throw new NotFoundError('not_found', `no trace ${traceId}`);
      if (globals.json) printJson(renderTraceJson(tree));
      else process.stdout.write(`${renderTraceText(tree)}\n`);
    });
}
