// A subscriber "node": its own NATS connection and JetStreamQueue, consuming one app until its
// parent SIGKILLs it or sends "stop" on stdin.
// argv: <compiled jetstream.js path> <servers, comma-separated> <prefix> <app> <replicas> [concurrency] [handler ms]
// Prints "ready" once connected; subscribes on "start" from stdin (so sibling nodes start together);
// prints "done <id>" for each event it completed (before the queue records it), "fail <id> <attempt>"
// for each attempt of a "poison" event (always fails).
import { pathToFileURL } from 'node:url';

const [modulePath, servers, prefix, app, replicas, concurrency, handlerMs] = process.argv.slice(2);
const { JetStreamQueue } = await import(pathToFileURL(modulePath).href);
const queue = await JetStreamQueue.open({
  servers,
  prefix,
  replicas: Number(replicas),
  retryBaseDelayMs: 20,
  retryMaxDelayMs: 100,
  // A killed node's unacked events come back to the others after this long.
  ackWaitMs: 3_000,
});
let buffered = '';
const flush = () => {
  if (buffered) process.stdout.write(buffered);
  buffered = '';
};
// Lines are batched per tick: thousands of writes to a pipe otherwise dominate the run.
const say = (line) => {
  if (!buffered) setImmediate(flush);
  buffered += `${line}\n`;
};

let subscription;
const start = () =>
  queue.subscribe(
    app,
    async (event) => {
      if (Number(handlerMs) > 0) await new Promise((resolve) => setTimeout(resolve, Number(handlerMs)));
      if (event.event === 'poison') {
        say(`fail ${event.id} ${event.attempt}`);
        return { kind: 'failed', error: 'poisoned', retry: true };
      }
      say(`done ${event.id}`);
      return { kind: 'completed', result: Buffer.from(event.data) };
    },
    { concurrency: Number(concurrency ?? 32) },
  );
say('ready');
process.stdin.on('data', async (chunk) => {
  const text = chunk.toString();
  if (text.includes('start')) subscription ??= start();
  if (!text.includes('stop')) return;
  await subscription?.close();
  await queue.close();
  flush();
  process.exit(0);
});
