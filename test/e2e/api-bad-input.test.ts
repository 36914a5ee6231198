/**
 * Oversize and malformed request fields on every rpc of a real engine (and its NATS request-reply
 * invoke) are refused at the edge with INVALID_ARGUMENT naming the field and the limit: never an
 * internal error from deep inside a store ("String does not fit in target buffer").
 */
import { headers as natsHeaders, connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type EngineClient } from '../../engine/api/client.js';
import type { SessionFrameMessage } from '../../engine/api/messages.js';
import { REQUEST_LIMITS } from '../../engine/api/request-fields.js';
import { EXAMPLES, cli, cliJson, startEngine, type RunningEngine } from '../helpers/engine.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';

const HUGE = 'x'.repeat(10 * 1024);
const YEAR_AND_A_HALF_MS = 550 * 24 * 3600 * 1000;

interface Refusal {
  code: string;
  status: number;
  message: string;
}

async function refusal(promise: Promise<unknown> | AsyncIterable<unknown>): Promise<Refusal> {
  try {
    if (Symbol.asyncIterator in promise) for await (const _ of promise as AsyncIterable<unknown>);
    else await promise;
  } catch (error) {
    return error as Refusal;
  }
  throw new Error('expected the engine to refuse the request');
}

/** INVALID_ARGUMENT, code invalid_argument, the message starts with the field and states the limit. */
function expectRefused(error: Refusal, field: string, limit: RegExp): void {
  expect(error.status, error.message).toBe(3);
  expect(error.code).toBe('invalid_argument');
  expect(error.message.startsWith(`${field}`), error.message).toBe(true);
  expect(error.message).toMatch(limit);
  expect(error.message.length).toBeLessThan(400);
}

describe('every rpc refuses bad fields with INVALID_ARGUMENT naming the field and the limit', () => {
  let nats: NatsServer;
  let engine: RunningEngine;
  let client: EngineClient;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer();
    engine = await startEngine({ args: ['--nats', nats.url] });
    client = connect(engine.address);
    await cliJson(engine, ['app', 'upload', join(EXAMPLES, 'node-echo')]);
    nc = await natsConnect({ servers: nats.url });
  });

  afterAll(async () => {
    client?.close();
    await nc?.close();
    await engine?.stop();
    await nats?.stop();
  });

  it('Invoke: target, headers and timeout_ms', async () => {
    expectRefused(await refusal(client.invoke(HUGE)), 'target', /10240 characters: the limit is 129/);
    expectRefused(await refusal(client.invoke('node-echo@' + 'e'.repeat(65))), 'target', /limit is 64/);
    const many = Object.fromEntries(Array.from({ length: REQUEST_LIMITS.headerCount + 1 }, (_, i) => [`h${i}`, 'v']));
    expectRefused(await refusal(client.invoke('node-echo@echo', 'x', { headers: many })), 'headers', /65 headers: the limit is 64/);
    expectRefused(await refusal(client.invoke('node-echo@echo', 'x', { headers: { big: HUGE.repeat(2) } })), 'headers["big"]', /20480 bytes: the limit is 16384/);
    expectRefused(await refusal(client.invoke('node-echo@echo', 'x', { headers: { 'bad\nname': 'v' } })), 'headers[', /control character/);
    // timeout_ms alone (the client's own gRPC deadline would be past what grpc-js can time).
    const tooLong = client.engine.Invoke({ target: 'node-echo@echo', data: Buffer.from('x'), headers: {}, timeoutMs: YEAR_AND_A_HALF_MS });
    expectRefused(await refusal(readAll(tooLong)), 'timeout_ms', /longer than the limit of 31622400000 ms/);
    // The same call with sane fields works: the refusals above were about the fields.
    expect((await client.call('node-echo@echo', 'fine', { headers: { ok: 'yes' }, timeoutMs: 30_000 })).toString()).toBe('fine');
  });

  it('InvokeStream: the header fields', async () => {
    expectRefused(await refusal(client.invokeStream(HUGE, [Buffer.from('x')])), 'target', /limit is 129/);
    expectRefused(await refusal(client.invokeStream('node-echo@echo', [Buffer.from('x')], { headers: { big: HUGE.repeat(2) } })), 'headers["big"]', /limit is 16384/);
  });

  it('Session: the invoke fields, on that id only; the session goes on', async () => {
    const session = client.session();
    try {
      expectRefused(await refusal(session.call(HUGE, 'x')), 'target', /limit is 129/);
      expectRefused(await refusal(session.call('node-echo@echo', 'x', { headers: { big: HUGE.repeat(2) } })), 'headers["big"]', /limit is 16384/);
      expect(Buffer.concat(await session.call('node-echo@echo', 'still open')).toString()).toBe('still open');
    } finally {
      session.close();
    }
    // An id past 2^53-1 cannot be answered exactly: refused.
    const raw = client.engine.Session();
    const frames: SessionFrameMessage[] = [];
    raw.on('data', (frame: SessionFrameMessage) => frames.push(frame));
    const ended = new Promise<void>((resolve) => raw.on('end', resolve));
    raw.on('error', () => undefined);
    raw.write({ id: '1152921504606846976' as unknown as number, invoke: { target: 'node-echo@echo', headers: {}, timeoutMs: 0 }, data: Buffer.from('x'), end: true });
    raw.end();
    await ended;
    expect(frames).toHaveLength(1);
    expect(frames[0].error?.code).toBe('invalid_argument');
    expect(frames[0].error?.message).toMatch(/^id: .*2\^53-1/);
  });

  it('Enqueue: id, target, headers, delay_ms and max_attempts', async () => {
    expectRefused(await refusal(client.enqueue('node-echo@echo', 'x', { id: HUGE })), 'id', /10240 characters: the limit is 256/);
    expectRefused(await refusal(client.enqueue('node-echo@echo', 'x', { id: 'a\u0000b' })), 'id', /control character/);
    expectRefused(await refusal(client.enqueue(HUGE, 'x')), 'target', /limit is 129/);
    expectRefused(await refusal(client.enqueue('node-echo@echo', 'x', { delayMs: YEAR_AND_A_HALF_MS })), 'delay_ms', /limit of 31622400000 ms/);
    expectRefused(await refusal(client.enqueue('node-echo@echo', 'x', { maxAttempts: 100_000 })), 'max_attempts', /limit is 10000/);
    expectRefused(await refusal(client.enqueue('node-echo@echo', 'x', { headers: { big: HUGE.repeat(2) } })), 'headers["big"]', /limit is 16384/);
    // The longest id allowed, in 3-byte characters, is stored and found again.
    const wide = `${'€'.repeat(REQUEST_LIMITS.idChars - 1)}x`;
    expect((await client.enqueue('node-echo@echo', 'x', { id: wide })).id).toBe(wide);
    expect((await client.status(wide)).id).toBe(wide);
  });

  it('EnqueueStream: a bad event is refused on its seq; the stream goes on', async () => {
    const stream = client.enqueueStream();
    const bad = await refusal(stream.enqueue(HUGE, 'x'));
    expectRefused(bad, 'target', /limit is 129/);
    const good = await stream.enqueue('node-echo@echo', 'x');
    expect(good.id).not.toBe('');
    await stream.close();
    // A seq past 2^53-1 could not be echoed exactly: refused on that (rounded) seq.
    const raw = client.engine.EnqueueStream();
    const replies: Array<{ seq: number; error?: { code: string; message: string } | null }> = [];
    raw.on('data', (reply: (typeof replies)[number]) => replies.push(reply));
    raw.on('error', () => undefined);
    const ended = new Promise<void>((resolve) => raw.on('end', resolve));
    raw.write({ seq: '1152921504606846976' as unknown as number, event: { target: 'node-echo@echo', data: Buffer.from('x'), headers: {}, maxAttempts: 0, delayMs: 0, id: '' } });
    raw.end();
    await ended;
    expect(replies).toHaveLength(1);
    expect(replies[0].error?.code).toBe('invalid_argument');
    expect(replies[0].error?.message).toMatch(/^seq: .*2\^53-1/);
  });

  it('Status and Redrive: the event id; an unknown id is event_id_not_found', async () => {
    expectRefused(await refusal(client.status(HUGE)), 'id', /10240 characters: the limit is 256/);
    expectRefused(await refusal(client.status('')), 'id', /empty/);
    expectRefused(await refusal(client.redrive(HUGE)), 'id', /limit is 256/);
    expectRefused(await refusal(client.redrive('line\nbreak')), 'id', /control character/);
    const unknown = await refusal(client.status('no-such-event'));
    expect([unknown.status, unknown.code]).toEqual([5, 'event_id_not_found']);
    // The longest id allowed, in 3-byte characters, still reaches the store and is just unknown.
    const widest = await refusal(client.status('€'.repeat(REQUEST_LIMITS.idChars)));
    expect([widest.status, widest.code]).toEqual([5, 'event_id_not_found']);
    const unknownRedrive = await refusal(client.redrive('no-such-event'));
    expect([unknownRedrive.status, unknownRedrive.code]).toEqual([5, 'event_id_not_found']);
  });

  it('Deploy rpcs: names and ids', async () => {
    expectRefused(await refusal(client.deadLetters(HUGE)), 'name', /10240 characters: the limit is 64/);
    expectRefused(await refusal(client.deadLetters('../etc')), 'name', /invalid/);
    expect(await client.deadLetters()).toEqual([]);
    expectRefused(await refusal(client.viewApp(HUGE)), 'name', /limit is 64/);
    expectRefused(await refusal(client.removeApp(HUGE)), 'name', /limit is 64/);
    expectRefused(await refusal(client.startApp('node-echo', HUGE)), 'profile', /limit is 64/);
    expectRefused(await refusal(client.stopApp('bad name')), 'name', /invalid/);
    expectRefused(await refusal(client.viewProfile(HUGE)), 'name', /limit is 64/);
    expectRefused(await refusal(client.uploadProfile(HUGE, 'pool-limit: 1\n')), 'name', /limit is 64/);
    expectRefused(await refusal(client.addToRunlist(HUGE, 'default')), 'app', /limit is 64/);
    expectRefused(await refusal(client.listCrashlogs(HUGE)), 'name', /limit is 64/);
    expectRefused(await refusal(client.viewCrashlog('node-echo', HUGE)), 'id', /limit is 256/);
    expectRefused(await refusal(client.appLogs(HUGE)), 'name', /limit is 64/);
    expect((await client.viewApp('node-echo')).name).toBe('node-echo');
  });

  it('the CLI exits with a usage error (1), not an internal one (6), on a 10 KB id', async () => {
    for (const args of [['status', HUGE], ['redrive', HUGE]]) {
      const result = await cli(engine, args);
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toMatch(/id: the id is 10240 characters: the limit is 256/);
    }
  });

  it('NATS request-reply invoke: the app in the subject, Cocaine-Event, Cocaine-Timeout-Ms and headers', async () => {
    const ask = async (app: string, set: Record<string, string>) => {
      const h = natsHeaders();
      for (const [key, value] of Object.entries(set)) h.set(key, value);
      const replies = await nc.requestMany(`cocaine.invoke.${app}`, 'x', { headers: h, strategy: 'sentinel', maxWait: 10_000 } as never);
      for await (const msg of replies) {
        if (msg.data.length === 0) return { status: msg.headers?.get('Cocaine-Status'), grpc: msg.headers?.get('Cocaine-Error-Status'), message: msg.headers?.get('Cocaine-Error-Message') ?? '', body: '' };
        return { status: 'data', grpc: '', message: '', body: msg.string() };
      }
      throw new Error('no reply');
    };
    const longApp = await ask('a'.repeat(200), { 'Cocaine-Event': 'echo' });
    expect([longApp.status, longApp.grpc]).toEqual(['error', '3']);
    expect(longApp.message).toMatch(/^subject: the app name is 200 characters: the limit is 64/);
    const longEvent = await ask('node-echo', { 'Cocaine-Event': 'e'.repeat(2000) });
    expect(longEvent.message).toMatch(/^Cocaine-Event: the event name is 2000 characters: the limit is 64/);
    const badTimeout = await ask('node-echo', { 'Cocaine-Event': 'echo', 'Cocaine-Timeout-Ms': 'soon' });
    expect([badTimeout.grpc, badTimeout.message]).toEqual(['3', 'Cocaine-Timeout-Ms: "soon" is not a whole number of milliseconds']);
    const farTimeout = await ask('node-echo', { 'Cocaine-Event': 'echo', 'Cocaine-Timeout-Ms': String(YEAR_AND_A_HALF_MS) });
    expect(farTimeout.message).toMatch(/^Cocaine-Timeout-Ms: .*limit of 31622400000 ms/);
    const bigHeader = await ask('node-echo', { 'Cocaine-Event': 'echo', 'X-Big': HUGE.repeat(2) });
    expect(bigHeader.message).toMatch(/^headers\["X-Big"\]: .*limit is 16384/);
    expect((await ask('node-echo', { 'Cocaine-Event': 'echo', 'Cocaine-Timeout-Ms': '30000' })).body).toBe('x');
  });
});

async function* readAll(call: AsyncIterable<unknown>): AsyncIterable<unknown> {
  try {
    for await (const message of call) yield message;
  } catch (error) {
    const { errorFromStatus } = await import('../../engine/api/status.js');
    throw errorFromStatus(error as never);
  }
}
