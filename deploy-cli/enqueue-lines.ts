import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { EngineClient, EnqueueOptions } from '../engine/api/client.js';
import { hintStdin } from './context.js';
import { exitCodeFor, messageFor, UsageError } from './errors.js';
import { progressCounter } from './progress.js';

/** Enqueues awaited at once over the stream: enough to hide the round trip, bounded memory. */
const WINDOW = 256;

export interface LinesOutcome {
  queued: number;
  duplicates: number;
  refused: number;
  /** Exit code of the first refused line (0 when none). */
  exitCode: number;
}

type LineResult = { line: number; id: string; duplicate: boolean } | { line: number; error: string; exitCode: number };

/**
 * `enqueue --lines`: every non-empty line of the input is one event, all over one EnqueueStream.
 * Ids are printed in input order (`--json`: one JSON object per line) while later lines are in flight.
 */
export async function enqueueLines(
  client: EngineClient,
  target: string,
  input: { file?: string },
  options: Omit<EnqueueOptions, 'id'>,
  json: boolean,
  engineAddress: string,
): Promise<LinesOutcome> {
  if (input.file === undefined) hintStdin('events, one per line,', '--file');
  const source = input.file === undefined ? process.stdin : createReadStream(input.file);
  const opened = new Promise<void>((resolve, reject) => {
    if (input.file === undefined) resolve();
    else source.once('open', () => resolve()).once('error', (error: Error) => reject(new UsageError(`cannot read --file ${input.file}: ${error.message}`)));
  });
  await opened;
  const lines = createInterface({ input: source, crlfDelay: Infinity });
  const stream = client.enqueueStream();
  const progress = progressCounter('queued', 'events');
  const outcome: LinesOutcome = { queued: 0, duplicates: 0, refused: 0, exitCode: 0 };
  const window: Array<Promise<LineResult>> = [];

  const printNext = async () => {
    const result = await window.shift()!;
    if ('error' in result) {
      outcome.refused++;
      if (outcome.exitCode === 0) outcome.exitCode = result.exitCode;
      if (json) process.stdout.write(`${JSON.stringify({ line: result.line, error: result.error })}\n`);
      else process.stderr.write(`cocaine-deploy: line ${result.line}: ${result.error}\n`);
    } else {
      outcome.queued++;
      if (result.duplicate) outcome.duplicates++;
      if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else process.stdout.write(`${result.id}${result.duplicate ? ' (duplicate: already accepted)' : ''}\n`);
    }
    progress.update(outcome.queued + outcome.refused);
  };

  try {
    let line = 0;
    for await (const text of lines) {
      line++;
      if (text === '') continue;
      const number = line;
      window.push(
        stream.enqueue(target, text, options).then(
          (reply): LineResult => ({ line: number, id: reply.id, duplicate: reply.duplicate }),
          (error: unknown): LineResult => ({ line: number, error: messageFor(error, engineAddress), exitCode: exitCodeFor(error) }),
        ),
      );
      if (window.length >= WINDOW) await printNext();
    }
    while (window.length > 0) await printNext();
    await stream.close();
  } catch (error) {
    stream.cancel();
    throw error;
  } finally {
    progress.finish();
  }
  return outcome;
}
