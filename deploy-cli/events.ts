import { Command, Option } from 'commander';
import type { EngineClient } from '../engine/api/client.js';
import type { EventStatusMessage } from '../engine/api/messages.js';
import { DeadlineError } from '../engine/errors/index.js';
import { globalsOf, parseInteger, readBody, withClient } from './context.js';
import { enqueueLines } from './enqueue-lines.js';
import { EXIT, UsageError } from './errors.js';
import { output, printFields, printTable } from './output.js';
import { eventJson } from './views.js';

const POLL_MS = 200;

function printEvent(event: EventStatusMessage): void {
  const view = eventJson(event);
  printFields([
    ['id', view.id],
    ['target', view.target],
    ['state', view.state],
    ['attempts', `${view.attempts} of ${view.maxAttempts}`],
    ['last error', view.lastError],
    ['created', view.createdAt],
    ['updated', view.updatedAt],
    ['result', view.result ?? (view.resultBase64 ? `(binary, base64) ${view.resultBase64}` : undefined)],
    ['truncated', view.resultTruncated ? 'yes: the result was too large to keep' : undefined],
    ['trace', view.traceId],
  ]);
}

/** One line on stderr per change of state or attempt while `status --wait` waits, only on a terminal. */
function stateReporter(stream: NodeJS.WriteStream = process.stderr): (status: EventStatusMessage) => void {
  let last = '';
  return (status) => {
    if (!stream.isTTY) return;
    const line = `${status.id}: ${status.state} (attempt ${status.attempts} of ${status.maxAttempts})${status.lastError ? `, last error: ${status.lastError}` : ''}`;
    if (line !== last) stream.write(`${line}\n`);
    last = line;
  };
}

async function waitForEnd(client: EngineClient, id: string, timeoutMs: number | undefined): Promise<EventStatusMessage> {
  const until = timeoutMs ? Date.now() + timeoutMs : Infinity;
  const report = stateReporter();
  for (;;) {
    const status = await client.status(id);
    if (status.state === 'COMPLETED' || status.state === 'FAILED') return status;
    report(status);
    if (Date.now() + POLL_MS > until) throw new DeadlineError(`event ${id} is still ${status.state} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

export function eventCommands(): Command[] {
  const enqueue = new Command('enqueue')
    .description('fire-and-forget: queue app@event durably and print its id')
    .argument('<target>', 'app@event')
    .option('-d, --data <string>', 'event body')
    .option('-f, --file <file>', 'event body from a file')
    .addOption(new Option('--max-attempts <n>', 'attempts before the event is a dead letter').argParser(parseInteger('--max-attempts', 1)))
    .addOption(new Option('--delay <ms>', 'run no earlier than now + MS').argParser(parseInteger('--delay')))
    .option('--id <id>', 'client-chosen id (enqueueing it again is a no-op)')
    .option('-l, --lines', 'each non-empty line of stdin or --file is one event (one stream; ids printed in input order)')
    .addHelpText('after', '\nWithout --data or --file the body is read from stdin.')
    .action(async (target: string, flags: { data?: string; file?: string; maxAttempts?: number; delay?: number; id?: string; lines?: boolean }, command: Command) => {
      if (flags.lines) {
        if (flags.data !== undefined) throw new UsageError('--lines reads stdin or --file, not --data');
        if (flags.id !== undefined) throw new UsageError('--lines gives every event its own id: drop --id');
        const globals = globalsOf(command);
        const outcome = await withClient(command, (client) =>
          enqueueLines(client, target, { file: flags.file }, { maxAttempts: flags.maxAttempts, delayMs: flags.delay }, globals.json === true, globals.engine),
        );
        if (outcome.exitCode !== 0) process.exitCode = outcome.exitCode;
        return;
      }
      const data = await readBody(flags);
      const reply = await withClient(command, (client) => client.enqueue(target, data, { maxAttempts: flags.maxAttempts, delayMs: flags.delay, id: flags.id }));
      output(globalsOf(command), { id: reply.id, duplicate: reply.duplicate }, () =>
        process.stdout.write(`${reply.id}${reply.duplicate ? ' (duplicate: already accepted)' : ''}\n`),
      );
    });

  const status = new Command('status')
    .description('state of a fire-and-forget event; --wait polls until COMPLETED or FAILED')
    .argument('<id>')
    .option('-w, --wait', 'wait for COMPLETED or FAILED (exit 5 when FAILED; --timeout bounds the wait)')
    .action(async (id: string, flags: { wait?: boolean }, command: Command) => {
      const globals = globalsOf(command);
      const event = await withClient(command, (client) => (flags.wait ? waitForEnd(client, id, globals.timeout) : client.status(id)));
      output(globals, eventJson(event), () => printEvent(event));
      if (flags.wait && event.state === 'FAILED') process.exitCode = EXIT.handler;
    });

  const deadLetters = new Command('dead-letters')
    .description('events that failed every attempt, newest first')
    .argument('[app]', 'only this app')
    .action(async (app: string | undefined, _flags: unknown, command: Command) => {
      const events = (await withClient(command, (client) => client.deadLetters(app))).map(eventJson);
      output(globalsOf(command), events, () =>
        printTable(['ID', 'TARGET', 'ATTEMPTS', 'UPDATED', 'LAST ERROR'], events.map((e) => [e.id, e.target, e.attempts, e.updatedAt, e.lastError])),
      );
    });

  const redrive = new Command('redrive')
    .description('put a dead letter back in the queue with a fresh attempt budget')
    .argument('<id>')
    .action(async (id: string, _flags: unknown, command: Command) => {
      const event = await withClient(command, (client) => client.redrive(id));
      output(globalsOf(command), eventJson(event), () => printEvent(event));
    });

  return [enqueue, status, deadLetters, redrive];
}
