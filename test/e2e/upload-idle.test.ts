import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type EngineClient } from '../../engine/api/client.js';
import { startGrpcServer, type GrpcServerHandle } from '../../engine/api/grpc-server.js';
import { resolveEngineOptions } from '../../engine/config/options.js';
import { Engine } from '../../engine/engine.js';
import { createLogger } from '../../engine/log.js';
import { tempDir } from '../helpers/engine.js';
import { MiB, appArchive, archiveSize, failureOf, openUpload, take, upload } from './upload-helpers.js';

interface Served {
  engine: Engine;
  server: GrpcServerHandle;
  client: EngineClient;
  uploadDir: string;
}

const serving: Served[] = [];

/** The real engine core behind a gRPC server with the given upload settings. */
async function serve(settings: { uploadIdleMs: number; maxConcurrentUploadBytes: number }): Promise<Served> {
  const dataDir = tempDir('upload-idle');
  const engine = await Engine.create(resolveEngineOptions({ flags: { dataDir, listen: '127.0.0.1:0' } }), createLogger('warn'));
  const uploadDir = join(dataDir, 'uploads');
  const server = await startGrpcServer(engine, { listen: '127.0.0.1:0', uploadDir, ...settings }).catch(async (error: unknown) => {
    await engine.shutdown();
    throw error;
  });
  const served = { engine, server, client: connect(server.address), uploadDir };
  serving.push(served);
  return served;
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

afterEach(async () => {
  for (const { engine, server, client } of serving.splice(0)) {
    client.close();
    await server.shutdown(1000);
    await engine.shutdown();
  }
});

describe('a stalled upload does not hold the upload budget forever', () => {
  it('an upload silent for uploadIdleMs is abandoned with DEADLINE_EXCEEDED, its file removed and its budget freed', async () => {
    const { client, uploadDir } = await serve({ uploadIdleMs: 400, maxConcurrentUploadBytes: 12 * MiB });
    const stalled = openUpload(client, { size: archiveSize(10 * MiB) });
    await stalled.write(await take(appArchive('stalled', 10 * MiB)[Symbol.asyncIterator](), 2 * MiB));
    await waitFor('the upload to reach the spool', () => readdirSync(uploadDir).length === 1);
    // Meanwhile its 10 MiB reservation keeps a second one out...
    expect((await failureOf(upload(client, 'blocked', 4 * MiB))).status).toBe(status.RESOURCE_EXHAUSTED);
    // ...until it has been silent too long.
    const abandoned = await failureOf(stalled.result);
    expect(abandoned.status).toBe(status.DEADLINE_EXCEEDED);
    expect(abandoned.message).toMatch(/nothing received for 400 ms after \d+ archive bytes; the upload was abandoned/);
    await waitFor('the spooled file to be removed', () => readdirSync(uploadDir).length === 0);
    expect(await upload(client, 'after', 10 * MiB)).toMatchObject({ name: 'after', size: archiveSize(10 * MiB) });
  });

  it('an idle timeout past 2^31-1 ms does not fire at once: a slow upload completes', async () => {
    const { client } = await serve({ uploadIdleMs: 2 ** 31 + 10_000, maxConcurrentUploadBytes: 12 * MiB });
    const slow = openUpload(client, { size: archiveSize(MiB) });
    const archive = appArchive('slow', MiB)[Symbol.asyncIterator]();
    for (let part = 0; part < 3; part++) {
      await slow.write(await take(archive, 256 * 1024));
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    await slow.send({ [Symbol.asyncIterator]: () => archive });
    slow.end();
    expect(await slow.result).toMatchObject({ name: 'slow', size: archiveSize(MiB) });
  });

  it('refuses a bad uploadIdleMs at start, naming it', async () => {
    await expect(serve({ uploadIdleMs: 0, maxConcurrentUploadBytes: 12 * MiB })).rejects.toMatchObject({ code: 'invalid_argument', field: 'uploadIdleMs' });
  });
});
