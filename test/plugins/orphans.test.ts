/**
 * No orphans: when the engine is SIGKILLed, each built-in runtime exits on the socket's EOF and
 * takes its process group with it, so a busy child a handler started (`sleep 1000`) is gone too,
 * without waiting for the next engine to clean up. A real engine process per runtime.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cliJson, isAlive, startEngine, waitFor, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';
import { RUNTIMES, writeApps, type AppSources, type RuntimeApps } from './runtimes.js';

/** Event `spawn`: starts `sleep 1000` in the worker's process group, answers "<child pid> <worker pid>". */
const SOURCES: AppSources = {
  node: {
    entrypoint: 'index.js',
    source: `
import { spawn as start } from 'node:child_process';
export function spawn() {
  const child = start('sleep', ['1000'], { stdio: 'ignore' });
  child.unref();
  return child.pid + ' ' + process.pid;
}
`,
  },
  python: {
    entrypoint: 'main.py',
    source: `
import os, subprocess

def spawn(request):
    child = subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return "%d %d" % (child.pid, os.getpid())
`,
  },
  perl: {
    entrypoint: 'app.pl',
    source: `
use strict;
use warnings;
use POSIX ();
use Cocaine::Worker;
handler spawn => sub {
    my $pid = fork() // die "fork: $!\\n";
    if ($pid == 0) {
        open(STDOUT, '>', '/dev/null');
        open(STDERR, '>', '/dev/null');
        exec('sleep', '1000') or POSIX::_exit(127);
    }
    return "$pid $$";
};
`,
  },
  native: {
    entrypoint: 'app.so',
    source: `
#include <cocaine/worker.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int cocaine_abi_version(void) { return COCAINE_NATIVE_ABI_VERSION; }
int cocaine_handle(const cocaine_request *req, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  if (strcmp(req->event, "spawn") != 0) return COCAINE_NOT_FOUND;
  pid_t pid = fork();
  if (pid < 0) { snprintf(error, error_len, "fork failed"); return COCAINE_ERROR; }
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 1);
    dup2(null, 2);
    execlp("sleep", "sleep", "1000", (char *)NULL);
    _exit(127);
  }
  char answer[64];
  int length = snprintf(answer, sizeof answer, "%d %d", (int)pid, (int)getpid());
  write(ctx, (const uint8_t *)answer, (size_t)length);
  return COCAINE_OK;
}
`,
  },
};

let apps: RuntimeApps;
const leftovers: number[] = [];
let engine: RunningEngine | undefined;
let rpc: Rpc | undefined;

beforeAll(async () => {
  apps = await writeApps(SOURCES);
  for (const runtime of RUNTIMES) {
    writeFileSync(
      join(apps.dir(runtime), 'manifest.yaml'),
      `name: orphans-${runtime}\nplugin: ${runtime}\nentrypoint: ${apps.entrypoint(runtime)}\n`,
    );
  }
}, 120_000);

afterEach(async () => {
  rpc?.close();
  rpc = undefined;
  await engine?.kill();
  engine = undefined;
  // Whatever a failed run left behind.
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
});

afterAll(() => apps?.remove());

describe.each(RUNTIMES)('%s runtime: the engine is SIGKILLed', (runtime) => {
  it("exits, and takes the busy child its handler started with it", async () => {
    engine = await startEngine();
    await cliJson(engine, ['app', 'upload', apps.dir(runtime), '--name', `orphans-${runtime}`]);
    rpc = connectRpc(engine.address);
    const result = await rpc.call(`orphans-${runtime}@spawn`, '', { timeoutMs: 30_000 });
    expect(result.error).toBeUndefined();
    const [child, worker] = result.body.toString().split(' ').map(Number);
    leftovers.push(child, worker);
    expect(isAlive(child)).toBe(true);
    expect(isAlive(worker)).toBe(true);

    await engine.kill();
    engine = undefined;
    await waitFor('the worker to exit after its engine died', () => !isAlive(worker), 10_000);
    await waitFor("the handler's child to be gone with its worker", () => !isAlive(child), 10_000);
  }, 60_000);
});
