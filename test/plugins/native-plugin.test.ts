/**
 * The native plugin object, and native apps through a real engine: a segfault and an app built
 * for another ABI, as a caller sees them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import plugin from '../../plugins/native/index.js';
import { PLUGIN_API_VERSION, type WorkerLaunchContext } from '../../plugins/types.js';
import { packageRoot } from '../../engine/util/paths.js';
import { compileSharedObject, nativeRuntimeHost } from '../helpers/cc.js';
import { EXAMPLES, cli, cliJson, startEngine, tempDir, type RunningEngine } from '../helpers/engine.js';
import { connectRpc, type Rpc } from '../helpers/rpc.js';

const context = (placement: 'host' | 'container', pluginDir: string): WorkerLaunchContext => ({
  app: 'example',
  workerId: 'w-1',
  entrypoint: 'echo.so',
  appDir: '/app',
  endpoint: '/run/w-1.sock',
  pluginDir,
  environment: {},
  placement,
});

describe('native plugin object', () => {
  it('declares its name, API version and the compiled runtime directory', () => {
    expect(plugin.name).toBe('native');
    expect(plugin.apiVersion).toBe(PLUGIN_API_VERSION);
    expect(plugin.runtimeDir).toBe(join(packageRoot(), 'dist/plugins/native/runtime'));
  });

  it('launches the host with one threadpool thread, on the host and in a container', () => {
    expect(plugin.launch(context('host', '/opt/rt'))).toEqual({
      command: process.execPath,
      args: ['/opt/rt/host.js'],
      env: { UV_THREADPOOL_SIZE: '1' },
    });
    expect(plugin.launch(context('container', '/cocaine/runtime'))).toEqual({
      command: 'node',
      args: ['/cocaine/runtime/host.js'],
      env: { UV_THREADPOOL_SIZE: '1' },
    });
  });
});

describe('native apps through the engine', () => {
  let engine: RunningEngine;
  let rpc: Rpc;
  let brokenDir: string;

  beforeAll(async () => {
    nativeRuntimeHost();
    const echoDir = join(EXAMPLES, 'native-echo');
    await compileSharedObject(join(echoDir, 'echo.c'), join(echoDir, 'echo.so'));
    brokenDir = mkdtempSync(join(tmpdir(), 'cocaine-native-abi-'));
    writeFileSync(
      join(brokenDir, 'app.c'),
      `#include <cocaine/worker.h>
int cocaine_abi_version(void) { return 999; }
int cocaine_handle(const cocaine_request *req, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  return COCAINE_NOT_FOUND;
}
`,
    );
    await compileSharedObject(join(brokenDir, 'app.c'), join(brokenDir, 'app.so'));
    writeFileSync(join(brokenDir, 'manifest.yaml'), 'name: native-abi\nplugin: native\nentrypoint: app.so\n');

    engine = await startEngine();
    rpc = connectRpc(engine.address);
    const profile = join(tempDir('profile'), 'native.json');
    writeFileSync(profile, JSON.stringify({ 'pool-limit': 1, 'startup-timeout': 10, 'crash-limit': 2, isolate: { type: 'process', args: {} } }));
    await cliJson(engine, ['profile', 'upload', 'native', profile]);
    await cliJson(engine, ['app', 'upload', echoDir, '--name', 'native-echo', '--profile', 'native']);
    await cliJson(engine, ['app', 'upload', brokenDir, '--name', 'native-abi', '--profile', 'native']);
  }, 60_000);

  afterAll(async () => {
    rpc?.close();
    await engine?.stop();
    if (brokenDir) rmSync(brokenDir, { recursive: true, force: true });
  });

  it('fails a call whose handler segfaults with UNAVAILABLE naming SIGSEGV, and recovers', async () => {
    expect((await rpc.call('native-echo@echo', 'warm')).body.toString()).toBe('warm');
    const result = await rpc.call('native-echo@segv');
    expect(result.error?.status).toBe(14); // UNAVAILABLE
    expect(result.error?.message).toContain('SIGSEGV');
    const crashlogs = await cliJson<unknown[]>(engine, ['crashlog', 'list', 'native-echo']);
    expect(crashlogs.length).toBeGreaterThan(0);
    expect((await rpc.call('native-echo@echo', 'alive')).body.toString()).toBe('alive');
  });

  it('refuses to start an app built for another ABI, and says why', async () => {
    const result = await rpc.call('native-abi@anything', '', { timeoutMs: 15_000 });
    expect(result.error).toBeDefined();
    expect(result.error?.status).toBe(14); // UNAVAILABLE
    expect(result.error?.message).toContain('app.so was built for native ABI 999, but this host speaks ABI 1');
    const logs = await cli(engine, ['app', 'logs', 'native-abi', '--lines', '50']);
    expect(logs.stdout).toContain('rebuild it against');
  });
});
