// Handlers that misbehave on purpose: the engine's tests use them for deadlines, crashes,
// heartbeat timeouts and logs.

/** Sleeps for the number of ms in the body; stops early (and rejects) when the call is cancelled. */
export async function sleep(request) {
  const ms = Number(await request.text());
  await new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    request.signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(request.signal.reason);
    });
  });
  return `slept ${ms}`;
}

/** Exits with code 3 after a line on stderr. */
export function crash() {
  process.stderr.write('crashing on purpose\n');
  process.exit(3);
}

/** Dies by SIGABRT (like a segfault: a signal, not an exit code). */
export function abort() {
  process.abort();
}

/** Busy loop forever: no heartbeats, no I/O. */
export function hang() {
  for (;;) {
    // spin
  }
}

/** Stops the whole process (SIGSTOP): it neither runs nor dies. */
export function stop() {
  process.kill(process.pid, 'SIGSTOP');
}

/** Writes lines to stdout and stderr, then answers. */
export function log(request) {
  process.stdout.write('log line to stdout\n');
  process.stderr.write('log line to stderr\n');
  return 'logged';
}

/** Throws: the caller gets the message. */
export async function fail(request) {
  throw new Error('boom: ' + (await request.text()));
}

/** The worker's whole environment as JSON. */
export function env() {
  return { ...process.env };
}

/** The worker's pid. */
export function pid() {
  return String(process.pid);
}
