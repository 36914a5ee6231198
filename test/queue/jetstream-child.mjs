// A child process: one engine node consuming a JetStream queue until its parent SIGKILLs it.
// argv: <compiled jetstream.js path> <nats url> <prefix> <app> <ackWaitMs> <concurrency>
// Subscribes with a handler that never settles (a live, slow handler) and prints
// "processing <id> <attempt>" for each event it is handed.
import { pathToFileURL } from 'node:url';

const [modulePath, servers, prefix, app, ackWaitArg, concurrencyArg] = process.argv.slice(2);
const { JetStreamQueue } = await import(pathToFileURL(modulePath).href);
const queue = await JetStreamQueue.open({ servers, prefix, ackWaitMs: Number(ackWaitArg), retryBaseDelayMs: 10, retryMaxDelayMs: 50 });
const say = (line) => process.stdout.write(`${line}\n`);
queue.subscribe(app, async (event) => {
  say(`processing ${event.id} ${event.attempt}`);
  return new Promise(() => {});
}, { concurrency: Number(concurrencyArg) });
say('ready');
