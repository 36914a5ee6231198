// The events every language's conformance app implements (test/conformance/kit.ts drives them).
let counter = 0;

export async function echo(request) {
  return request.body();
}

export async function* stream(request) {
  const count = Number((await request.body()).toString() || '0');
  for (let i = 0; i < count; i++) yield String(i);
}

export async function* upper(request) {
  for await (const chunk of request) yield Buffer.from(chunk.toString('latin1').toUpperCase(), 'latin1');
}

export async function big(request) {
  const size = Number((await request.body()).toString());
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = i % 251;
  return out;
}

export async function fail(request) {
  throw new Error(`boom: ${(await request.body()).toString()}`);
}

export function counterEvent() {
  return String(++counter);
}

export async function sleep(request) {
  const ms = Number((await request.body()).toString() || '0');
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    request.signal.addEventListener('abort', () => {
      clearTimeout(timer);
      console.error('sleep cancelled');
      resolve();
    });
  });
  return 'slept';
}

export function crash() {
  process.stderr.write('about to crash\n');
  process.exit(3);
}

export function hang() {
  process.kill(process.pid, 'SIGSTOP');
}

export function log() {
  console.log('hello stdout');
  console.error('hello stderr');
  return 'ok';
}

export async function concurrent() {
  await new Promise((resolve) => setTimeout(resolve, 200));
  return 'done';
}

export function headers(request) {
  return JSON.stringify(request.headers);
}

export { counterEvent as counter };

// Services (protocol version 2; the kit's "services" group). A service error fails the handler
// with "<code>: <message>", so the caller sees the engine's code.
const serviceFailure = (error) => new Error(`${error.code}: ${error.message}`);

/** Splits "<first> <rest>" at the first space. */
function firstWord(text) {
  const space = text.indexOf(' ');
  return space < 0 ? [text, ''] : [text.slice(0, space), text.slice(space + 1)];
}

/** "<app@event> <payload>": calls the target with the payload and answers its result. */
export async function relay(request) {
  const [target, payload] = firstWord((await request.body()).toString());
  try {
    return await request.call(target, payload).body();
  } catch (error) {
    throw serviceFailure(error);
  }
}

/** "<app@event> <id or -> <payload>": queues the event; answers "<id> <duplicate>". */
export async function emit(request) {
  const [target, rest] = firstWord((await request.body()).toString());
  const [id, payload] = firstWord(rest);
  try {
    const queued = await request.emit(target, payload, id === '-' ? {} : { id });
    return `${queued.id} ${queued.duplicate}`;
  } catch (error) {
    throw serviceFailure(error);
  }
}

/**
 * The app's storage, one command per call: "put <key> <value> [<revision>]" → the new revision;
 * "get <key>" → "<revision> <value>" or "none"; "delete <key> [<revision>]" → "deleted" or
 * "missing"; "list <prefix> <limit> [<after>]" → "<key>,<key>... next=<next or nothing>".
 */
export async function kv(request) {
  const [command, key, ...rest] = (await request.body()).toString().split(' ');
  const { storage } = request;
  try {
    if (command === 'put') return String(await storage.put(key, rest[0], rest[1] === undefined ? {} : { revision: Number(rest[1]) }));
    if (command === 'get') {
      const found = await storage.get(key);
      return found ? `${found.revision} ${found.value.toString()}` : 'none';
    }
    if (command === 'delete') return (await storage.delete(key, rest[0] === undefined ? {} : { revision: Number(rest[0]) })) ? 'deleted' : 'missing';
    if (command === 'list') {
      const page = await storage.list(key, { limit: Number(rest[0]), ...(rest[1] === undefined ? {} : { after: rest[1] }) });
      return `${page.keys.join(',')} next=${page.next ?? ''}`;
    }
  } catch (error) {
    throw serviceFailure(error);
  }
  throw new Error(`unknown kv command "${command}"`);
}

/** "<level> <message>": one structured log record with the field kit=conformance. */
export async function note(request) {
  const [level, message] = firstWord((await request.body()).toString());
  request.log[level](message, { kit: 'conformance' });
  return 'ok';
}
