import { spawn } from 'node:child_process';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { ENGINE_MAIN, EXAMPLES, cli, cliJson, startEngine, stopAllEngines, tempDir } from '../helpers/engine.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';

function runEngine(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [ENGINE_MAIN, '--data', tempDir('flags'), '--log-level', 'info', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

describe('cocaine-engine command line', () => {
  let nats: NatsServer | undefined;

  afterAll(async () => {
    await stopAllEngines();
    await nats?.stop();
  });

  it('a port in use gives exactly one line on stderr, the engine\'s own', async () => {
    const first = await startEngine();
    const second = await runEngine(['--listen', first.address]);
    expect(second.code).toBe(1);
    expect(second.stderr).toBe(`cocaine-engine: cannot listen on ${first.address}: listen EADDRINUSE: address already in use ${first.address}\n`);
  });

  it('--nats-prefix names the streams and buckets; a bad prefix is refused naming the option', async () => {
    nats = await startNatsServer({ jetstream: true });
    const engine = await startEngine({ args: ['--nats', nats.url, '--queue', 'jetstream', '--nats-prefix', 'flagtest'] });
    await cliJson(engine, ['app', 'upload', `${EXAMPLES}/node-echo`]);
    const id = (await cli(engine, ['enqueue', 'node-echo@echo', '--data', 'x'])).stdout.trim();
    expect((await cliJson<{ state: string }>(engine, ['status', id, '--wait'])).state).toBe('COMPLETED');
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      const streams = (await jsm.streams.list().next()).map((info) => info.config.name);
      expect(streams.length).toBeGreaterThan(0);
      for (const name of streams) expect(name).toMatch(/flagtest/i);
    } finally {
      await nc.close();
    }
    const bad = await runEngine(['--listen', '127.0.0.1:0', '--nats-prefix', 'a.b']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^cocaine-engine: nats prefix "a\.b" must be/);
  });
});
