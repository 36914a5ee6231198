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
