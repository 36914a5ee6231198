import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { connect, type EngineClient } from '../../engine/api/client.js';
import { startEngine, stopAllEngines, type RunningEngine } from '../helpers/engine.js';
import { startNatsServer, stopAllNatsServers } from '../helpers/nats-server.js';
import { connectRpc } from '../helpers/rpc.js';
import { MiB, appArchive, archiveSize, failureOf, openUpload, take, upload } from './upload-helpers.js';

/** Resident and peak resident set of a process, in bytes (/proc: VmRSS, VmHWM). */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const uploadFiles = (engine: RunningEngine) => readdirSync(join(engine.dataDir, 'uploads'));

describe('uploads are spooled to disk under a concurrent-bytes cap (real engine)', () => {
  const clients: EngineClient[] = [];
  const client = (engine: RunningEngine) => {
    const made = connect(engine.address);
    clients.push(made);
    return made;
  };

  afterEach(() => {
    for (const made of clients.splice(0)) made.close();
  });

  afterAll(async () => {
    await stopAllEngines();
    await stopAllNatsServers();
  });

  it('concurrent large uploads keep the engine RSS bounded, and every app is stored intact and callable', async () => {
    const blob = Number(process.env.UPLOAD_TEST_MIB ?? 100) * MiB;
    const count = 4;
    const engine = await startEngine({ env: { COCAINE_MAX_CONCURRENT_UPLOAD_BYTES: String(count * (blob + 2 * MiB)) } });
    const deploy = client(engine);
    const before = memoryOf(engine.process.pid!);
    const started = Date.now();
    const infos = await Promise.all(Array.from({ length: count }, (_, i) => upload(deploy, `big-${i}`, blob)));
    const seconds = (Date.now() - started) / 1000;
    const after = memoryOf(engine.process.pid!);
    const growth = after.peak - before.rss;
    console.log(
      `upload spool: ${count} × ${blob / MiB} MiB concurrent in ${seconds.toFixed(1)} s; engine RSS ${(before.rss / MiB).toFixed(0)} MiB before, ` +
        `${(after.rss / MiB).toFixed(0)} MiB after, peak ${(after.peak / MiB).toFixed(0)} MiB (growth ${(growth / MiB).toFixed(0)} MiB)`,
    );
    for (const [i, info] of infos.entries()) expect(info).toMatchObject({ name: `big-${i}`, size: archiveSize(blob), state: 'running' });
    // Buffered whole, the archives alone would add count × blob; spooled, the engine holds a few chunks per upload.
    expect(growth).toBeLessThan(Math.min(count * blob, 256 * MiB) / 2);
    expect(uploadFiles(engine)).toEqual([]);
    const rpc = connectRpc(engine.address);
    try {
      expect((await rpc.call('big-3@echo', 'still whole')).body.toString()).toBe('still whole');
    } finally {
      rpc.close();
    }
    await engine.stop();
  });

  it('an upload past the concurrent cap gets RESOURCE_EXHAUSTED naming the limit, loses nothing, and a retry succeeds', async () => {
    const engine = await startEngine({ env: { COCAINE_MAX_CONCURRENT_UPLOAD_BYTES: String(48 * MiB) } });
    const deploy = client(engine);
    await upload(deploy, 'resident', MiB);

    // The first upload holds 30 MiB of the 48 while it is in progress...
    const first = openUpload(deploy, { size: archiveSize(30 * MiB) });
    const firstArchive = appArchive('first', 30 * MiB)[Symbol.asyncIterator]();
    await first.write(await take(firstArchive, 4 * MiB));
    await waitFor('the first upload to reach the spool', () => uploadFiles(engine).length === 1);

    // ...so a second one of 30 MiB is refused at once, before it sends its archive.
    const second = openUpload(deploy, { size: archiveSize(30 * MiB) });
    const refused = await failureOf(second.result);
    expect(refused.status).toBe(8); // RESOURCE_EXHAUSTED
    expect(refused.message).toMatch(/50331648-byte limit on concurrent uploads \(max-concurrent-upload-bytes\)/);
    expect(refused.message).toMatch(/retry/);

    // An upload that declares no size is held to the cap as its bytes arrive.
    const undeclared = openUpload(deploy, { size: 0 });
    const undeclaredSent = undeclared.send(appArchive('undeclared', 30 * MiB)).catch(() => undefined);
    const cut = await failureOf(undeclared.result);
    expect(cut.status).toBe(8);
    undeclared.cancel();
    await undeclaredSent;

    // Nothing lost: the first upload completes, the resident app is untouched and still serves.
    await first.send({ [Symbol.asyncIterator]: () => firstArchive });
    first.end();
    expect(await first.result).toMatchObject({ name: 'first', size: archiveSize(30 * MiB) });
    const apps = (await deploy.listApps()).map((app) => app.name).sort();
    expect(apps).toEqual(['first', 'resident']);

    // The budget is back: the refused upload, retried, succeeds.
    expect(await upload(deploy, 'second', 30 * MiB)).toMatchObject({ name: 'second', state: 'running' });
    const rpc = connectRpc(engine.address);
    try {
      for (const app of ['resident', 'first', 'second']) expect((await rpc.call(`${app}@ping`)).body.toString()).toBe('pong');
    } finally {
      rpc.close();
    }
    await waitFor('no spooled files', () => uploadFiles(engine).length === 0, 10_000);
    await engine.stop();
  });

  it('an upload aborted by the client leaves no temp file and gives its budget back', async () => {
    const engine = await startEngine({ env: { COCAINE_MAX_CONCURRENT_UPLOAD_BYTES: String(24 * MiB) } });
    const deploy = client(engine);
    for (let round = 0; round < 3; round++) {
      const aborted = openUpload(deploy, { size: archiveSize(20 * MiB) });
      await aborted.write(await take(appArchive(`aborted-${round}`, 20 * MiB)[Symbol.asyncIterator](), 6 * MiB));
      await waitFor('the upload to reach the spool', () => uploadFiles(engine).length === 1);
      aborted.cancel();
      expect((await failureOf(aborted.result)).status).toBe(1); // CANCELLED, on the client side
      await waitFor('the spooled file to be removed', () => uploadFiles(engine).length === 0, 10_000);
    }
    // Had an aborted upload kept its 20 MiB reservation, this one would not fit in 24.
    expect(await upload(deploy, 'after-aborts', 20 * MiB)).toMatchObject({ name: 'after-aborts' });
    expect((await deploy.listApps()).map((app) => app.name)).toEqual(['after-aborts']);
    expect(uploadFiles(engine)).toEqual([]);
    await engine.stop();
  });

  it('with NATS storage too: archives go into the object store and back into the spool as streams, RSS bounded', async () => {
    const nats = await startNatsServer({ jetstream: true });
    const blob = Number(process.env.UPLOAD_TEST_NATS_MIB ?? 100) * MiB;
    const engine = await startEngine({ args: ['--storage', nats.url] });
    const deploy = client(engine);
    const before = memoryOf(engine.process.pid!);
    await Promise.all([upload(deploy, 'nats-a', blob), upload(deploy, 'nats-b', blob)]);
    const rpc = connectRpc(engine.address);
    try {
      // The first call extracts each archive, read chunk by chunk from the object store.
      for (const app of ['nats-a', 'nats-b']) expect((await rpc.call(`${app}@echo`, app, { timeoutMs: 120_000 })).body.toString()).toBe(app);
    } finally {
      rpc.close();
    }
    const after = memoryOf(engine.process.pid!);
    console.log(`upload spool (nats): 2 × ${blob / MiB} MiB uploaded and extracted; engine RSS ${(before.rss / MiB).toFixed(0)} MiB before, peak ${(after.peak / MiB).toFixed(0)} MiB`);
    // Buffered, the two archives alone would add 2 × blob on upload and again on extraction; streamed,
    // the growth is a few chunks plus garbage not yet collected, whatever the size (2 × 160 MiB: ~50 MiB).
    expect(after.peak - before.rss).toBeLessThan(128 * MiB);
    expect(uploadFiles(engine)).toEqual([]);
    await engine.stop();
  });
});
