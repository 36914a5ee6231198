import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workerBaseEnv } from '../../engine/isolate/clean-env.js';
import { startPeer } from '../helpers/protocol-peer.js';
import { nodeRuntimeHost } from './node-runtime-build.js';

/**
 * Cold start and throughput of the Node runtime, against bare node. The bounds are loose (the
 * suite shares 2 cores with other files); the numbers are printed for the record.
 */
let host: string;
let appDir: string;

beforeAll(() => {
  host = nodeRuntimeHost();
  appDir = mkdtempSync(join(tmpdir(), 'node-perf-app-'));
  writeFileSync(join(appDir, 'package.json'), '{"type":"module"}');
  writeFileSync(join(appDir, 'index.js'), 'export function echo(request) { return request.body(); }\n');
});

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

describe('node runtime performance', () => {
  it('starts close to bare node: spawn → handshake and spawn → first result byte', async () => {
    const bare: number[] = [];
    const handshake: number[] = [];
    const firstByte: number[] = [];
    for (let i = 0; i < 7; i++) {
      bare.push(await bareNodeFirstOutput());
      const peer = await startPeer({ command: process.execPath, args: [host], cwd: appDir });
      // Queued before the worker connects: sent as soon as it does, like the engine's first call.
      const result = peer.invoke('echo', 'x');
      await peer.handshake;
      expect(Buffer.concat((await result).chunks).toString()).toBe('x');
      handshake.push(peer.timing.handshakeMs!);
      firstByte.push(peer.timing.firstResultByteMs!);
      await peer.close();
    }
    const numbers = { bareNodeMs: median(bare), handshakeMs: median(handshake), firstResultByteMs: median(firstByte) };
    console.log('node cold start (median of 7):', JSON.stringify(numbers, (_, v) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v)));
    expect(numbers.handshakeMs).toBeLessThan(numbers.bareNodeMs * 2 + 100);
  });

  it('serves tens of thousands of small invocations per second through one worker', async () => {
    const peer = await startPeer({ command: process.execPath, args: [host], cwd: appDir });
    try {
      await peer.handshake;
      const body = Buffer.from('ping');
      const total = 40_000;
      const window = 500;
      const started = performance.now();
      let done = 0;
      // A window of invocations in flight, like the engine's concurrency limit.
      await Promise.all(
        Array.from({ length: window }, async () => {
          while (done < total) {
            done++;
            const { chunks } = await peer.invoke('echo', body);
            if (chunks.length !== 1) throw new Error('bad echo');
          }
        }),
      );
      const perSecond = total / ((performance.now() - started) / 1000);
      console.log(`node runtime throughput: ${Math.round(perSecond)} invocations/s (window ${window})`);
      expect(perSecond).toBeGreaterThan(5000);
    } finally {
      await peer.close();
    }
  });
});
