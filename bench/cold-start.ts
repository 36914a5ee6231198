import { spawn } from 'node:child_process';
import type { EngineClient } from '../engine/api/client.js';
import { workerBaseEnv } from '../engine/isolate/clean-env.js';
import { median } from './report.js';

/** Time from spawn to the first byte on stdout, ms. */
export function spawnToFirstOutput(command: string, args: string[], env: Record<string, string> = workerBaseEnv()): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'ignore'] });
    let done = false;
    child.stdout.once('data', () => {
      done = true;
      resolve(Number(process.hrtime.bigint() - started) / 1e6);
    });
    child.once('error', reject);
    // 'close', not 'exit': a process that prints and exits at once may report its exit before the
    // stdout data event has been delivered.
    child.once('close', () => {
      if (!done) reject(new Error(`${command} exited without output`));
    });
  });
}

export async function medianOf(samples: number, measure: () => Promise<number>): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) values.push(await measure());
  return median(values);
}

/** First event of an app with no worker → first byte of the result, through a running engine. */
export async function engineColdStart(client: EngineClient, app: string, event: string, data: string, samples: number): Promise<number> {
  await client.call(`${app}@${event}`, data); // spool the app once; not part of a cold start
  return medianOf(samples, async () => {
    await client.restartApp(app); // terminates the pool: the next call spawns
    const started = process.hrtime.bigint();
    for await (const chunk of client.invoke(`${app}@${event}`, data)) {
      void chunk;
      return Number(process.hrtime.bigint() - started) / 1e6;
    }
    throw new Error(`${app}@${event} returned no bytes`);
  });
}
