import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workerBaseEnv } from '../../engine/isolate/clean-env.js';
import { packageRoot } from '../../engine/util/paths.js';
import { compileSharedObject, nativeRuntimeHost } from '../helpers/cc.js';
import { startPeer } from '../helpers/protocol-peer.js';

/**
 * Cold start and throughput of the native host, against bare node (the host is a node program).
 * The bounds are loose (the suite shares 2 cores with other files); the numbers are printed.
 */
let host: string;
let appDir: string;
const env = { UV_THREADPOOL_SIZE: '1' };

beforeAll(async () => {
  host = nativeRuntimeHost();
  appDir = mkdtempSync(join(tmpdir(), 'native-perf-app-'));
  await compileSharedObject(join(packageRoot(), 'examples/native-echo/echo.c'), join(appDir, 'echo.so'));
}, 60_000);

afterAll(() => rmSync(appDir, { recursive: true, force: true }));

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function bareNodeFirstOutput(): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, ['-e', "process.stdout.write('x')"], { env: workerBaseEnv(), stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise((resolve) => child.stdout.once('data', resolve));
  const elapsed = performance.now() - started;
  await new Promise((resolve) => child.once('close', resolve));
  return elapsed;
}

describe('native host performance', () => {
  it('starts close to bare node: spawn → handshake and spawn → first result byte', async () => {
    const bare: number[] = [];
    const handshake: number[] = [];
    const firstByte: number[] = [];
    for (let i = 0; i < 7; i++) {
      bare.push(await bareNodeFirstOutput());
      const peer = await startPeer({ command: process.execPath, args: [host], cwd: appDir, entrypoint: 'echo.so', env });
      // Queued before the worker connects: sent as soon as it does, like the engine's first call.
      const result = peer.invoke('echo', 'x');
      await peer.handshake;
      expect(Buffer.concat((await result).chunks).toString()).toBe('x');
      handshake.push(peer.timing.handshakeMs!);
      firstByte.push(peer.timing.firstResultByteMs!);
      await peer.close();
    }
    const numbers = { bareNodeMs: median(bare), handshakeMs: median(handshake), firstResultByteMs: median(firstByte) };
    console.log('native cold start (median of 7):', JSON.stringify(numbers, (_, v) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v)));
    expect(numbers.handshakeMs).toBeLessThan(numbers.bareNodeMs * 2 + 100);
  }, 60_000);

  it('serves thousands of small invocations per second through one worker, one at a time', async () => {
    const peer = await startPeer({ command: process.execPath, args: [host], cwd: appDir, entrypoint: 'echo.so', env });
    try {
      await peer.handshake;
      const body = Buffer.from('ping');
      const total = 10_000;
      let done = 0;
      const started = performance.now();
      // Many in flight: the host queues them and runs one at a time.
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (done < total) {
            done++;
            const { chunks } = await peer.invoke('echo', body);
            if (chunks.length !== 1) throw new Error('bad echo');
          }
        }),
      );
      const perSecond = total / ((performance.now() - started) / 1000);
      console.log(`native host: ${Math.round(perSecond)} echo invocations/s (64 in flight, executed one at a time)`);
      expect(perSecond).toBeGreaterThan(1_000);
    } finally {
      await peer.close();
    }
  }, 60_000);
});
