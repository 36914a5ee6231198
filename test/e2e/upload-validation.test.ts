import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type EngineClient } from '../../engine/api/client.js';
import type { RemoteError } from '../../engine/api/status.js';
import { EXAMPLES, cliJson, startEngine, type RunningEngine } from '../helpers/engine.js';

const HUGE = 'x'.repeat(10_000);
const MiB = 1024 * 1024;

async function refusal(promise: Promise<unknown>): Promise<RemoteError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e as RemoteError,
  );
  if (!error) throw new Error('expected the rpc to be refused');
  return error;
}

describe('deploy rpcs validate names, ids and documents at the edge (real engine)', () => {
  let engine: RunningEngine;
  let client: EngineClient;

  beforeAll(async () => {
    engine = await startEngine();
    client = connect(engine.address);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-echo')]);
  });

  afterAll(async () => {
    client?.close();
    await engine?.stop();
  });

  const cases: Array<[string, string, () => Promise<unknown>]> = [
    ['ViewApp', 'name', () => client.viewApp(HUGE)],
    ['ViewApp', 'name', () => client.viewApp('../etc')],
    ['RemoveApp', 'name', () => client.removeApp(HUGE)],
    ['StartApp', 'profile', () => client.startApp('node-echo', HUGE)],
    ['StartApp', 'profile', () => client.startApp('node-echo', '../x')],
    ['RestartApp', 'profile', () => client.restartApp('node-echo', 'a/b')],
    ['StopApp', 'name', () => client.stopApp(HUGE)],
    ['UploadProfile', 'name', () => client.uploadProfile(HUGE, 'pool-limit: 3')],
    ['UploadProfile', 'content', () => client.uploadProfile('p', `pool-limit: 3\n#${'y'.repeat(2 * MiB)}\n`)],
    ['UploadProfile', 'file', () => client.uploadProfile('p', 'pool-limit: 3', HUGE)],
    ['ViewProfile', 'name', () => client.viewProfile(HUGE)],
    ['RemoveProfile', 'name', () => client.removeProfile(HUGE)],
    ['AddToRunlist', 'app', () => client.addToRunlist(HUGE, 'default')],
    ['AddToRunlist', 'profile', () => client.addToRunlist('node-echo', HUGE)],
    ['RemoveFromRunlist', 'name', () => client.removeFromRunlist(HUGE)],
    ['ListCrashlogs', 'name', () => client.listCrashlogs(HUGE)],
    ['ViewCrashlog', 'id', () => client.viewCrashlog('node-echo', HUGE)],
    ['RemoveCrashlogs', 'name', () => client.removeCrashlogs(HUGE)],
    ['ListDeadLetters', 'name', () => client.deadLetters(HUGE)],
    ['Redrive', 'id', () => client.redrive(HUGE)],
    ['AppLogs', 'name', async () => {
      for await (const _line of client.appLogs(HUGE)) break;
    }],
    ['UploadApp', 'header.name', () => client.uploadApp({ name: HUGE, archive: Buffer.alloc(1024) })],
    ['UploadApp', 'header.profile', () => client.uploadApp({ name: 'a', profile: 'no/slash', archive: Buffer.alloc(1024) })],
    ['UploadApp', 'header.manifest', () => client.uploadApp({ name: 'a', manifest: Buffer.alloc(2 * MiB, 0x23), archive: Buffer.alloc(1024) })],
    ['UploadApp', 'header.manifest_file', () => client.uploadApp({ name: 'a', manifest: Buffer.from('plugin: node'), manifestFile: HUGE, archive: Buffer.alloc(1024) })],
  ];

  it.each(cases)('%s refuses a bad %s with INVALID_ARGUMENT naming it, in a short message', async (_rpc, field, run) => {
    const error = await refusal(run());
    expect(error.status).toBe(status.INVALID_ARGUMENT);
    expect(error.code).toBe('invalid_argument');
    expect(error.message.startsWith(`${field} `) || error.message.startsWith(`${field}:`)).toBe(true);
    expect(error.message.length).toBeLessThan(400);
  });

  it('a refused upload header takes no archive bytes: nothing is spooled and the app is unchanged', async () => {
    const before = await client.viewApp('node-echo');
    const error = await refusal(client.uploadApp({ name: 'node-echo', profile: '..', archive: Buffer.alloc(8 * MiB) }));
    expect(error.status).toBe(status.INVALID_ARGUMENT);
    expect(readdirSync(join(engine.dataDir, 'uploads'))).toEqual([]);
    expect(await client.viewApp('node-echo')).toEqual(before);
  });
});
