import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, cliJson, startEngine, stopAllEngines, tempDir } from '../helpers/engine.js';
import { connectRpc } from '../helpers/rpc.js';

afterAll(stopAllEngines);

const FLOOD_MB = 500;

/** A node app whose `flood` handler prints MB of short lines, then three last lines, then exits 3. */
function floodApp(): string {
  const dir = tempDir('flood');
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  writeFileSync(join(dir, 'manifest.yaml'), 'name: core-flood\nplugin: node\nentrypoint: index.js\n');
  writeFileSync(
    join(dir, 'index.js'),
    `
const line = 'a short line of output\\n';
const block = Buffer.from(line.repeat(Math.floor(65536 / line.length)));
export async function flood(request) {
  let left = Number(await request.text()) * 1024 * 1024;
  while (left > 0) {
    if (!process.stdout.write(block)) await new Promise((resolve) => process.stdout.once('drain', resolve));
    else await new Promise((resolve) => setImmediate(resolve));
    left -= block.length;
  }
  for (let i = 1; i <= 3; i++) process.stdout.write('final line ' + i + '\\n');
  await new Promise((resolve) => process.stdout.write('', resolve));
  process.exit(3);
}
`,
  );
  return dir;
}

/** utime + stime of a process, seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

describe('worker output is kept as raw bytes in a bounded ring', () => {
  it(`a worker printing ${FLOOD_MB} MB of short lines keeps the engine's memory bounded; the crashlog has the last lines`, async () => {
    const engine = await startEngine();
    const pid = engine.process.pid!;
    const rpc = connectRpc(engine.address);
    const profile = join(tempDir('profile'), 'flood.yaml');
    // The largest crashlog the schema allows.
    writeFileSync(profile, 'crashlog-limit: 10000\ncrash-limit: 100\n');
    await cliJson(engine, ['profile', 'upload', 'flood', profile]);
    await cliJson(engine, ['app', 'upload', floodApp(), '--profile', 'flood']);
    await rpc.call('core-flood@missing'); // spawns the worker: its start is not part of the measure

    const baseRss = rssBytes(pid);
    let peakRss = baseRss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(pid))), 50);
    const cpuBefore = cpuSeconds(pid);
    const started = Date.now();
    const result = await rpc.call('core-flood@flood', String(FLOOD_MB));
    const cpu = cpuSeconds(pid) - cpuBefore;
    clearInterval(sampler);
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `engine: ${cpu.toFixed(2)} CPU-s for ${FLOOD_MB} MB of output (${((cpu * 1024) / FLOOD_MB).toFixed(2)} CPU-s/GB), ` +
        `${seconds.toFixed(1)} s wall, RSS ${(baseRss / 1024 / 1024).toFixed(0)} MiB before, peak ${(peakRss / 1024 / 1024).toFixed(0)} MiB`,
    );

    expect(result.error?.status).toBe(14);
    expect(result.error?.message).toContain('exited with code 3');
    expect(result.error?.message).toContain('final line 1 | final line 2 | final line 3');
    // The ring holds at most 1 MiB per worker, the app's logs 1 MiB, the early buffer 1 MiB.
    expect(peakRss).toBeLessThan(400 * 1024 * 1024);

    const list = await cliJson<Array<{ id: string }>>(engine, ['crashlog', 'list', 'core-flood']);
    const entry = await cliJson<{ lines: string[] }>(engine, ['crashlog', 'view', 'core-flood', list[0]!.id]);
    expect(entry.lines.slice(-4)).toEqual(['a short line of output', 'final line 1', 'final line 2', 'final line 3']);
    expect(entry.lines.length).toBeGreaterThan(1000);
    expect(entry.lines.length).toBeLessThanOrEqual(10_000);
    const logs = await cli(engine, ['app', 'logs', 'core-flood', '--lines', '5']);
    expect(logs.stdout).toContain('final line 3');
    rpc.close();
    await engine.stop();
  }, 180_000);
});
