/**
 * The Node runtime's service API (protocol version 2) against the protocol test peer playing the
 * engine: the frames it sends for call / emit / storage / log, answers and errors, cancellation.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FrameType, encodeJson } from '../../engine/protocol/frames.js';
import { startPeer, type Peer, type PeerOptions } from '../helpers/protocol-peer.js';
import { nodeRuntimeHost } from './node-runtime-build.js';

const FIXTURE = `
const fail = (error) => ({ code: error.code, message: error.message, name: error.name });
export async function call(request) {
  const answer = request.call('other@echo', request.headers.streamed ? (async function* () { yield 'a'; yield Buffer.from('b'); })() : 'body', { headers: { h: 'v' }, timeoutMs: 1500 });
  const chunks = [];
  for await (const chunk of answer) chunks.push(chunk.toString());
  return chunks;
}
export async function callFails(request) {
  try { await request.call('other@echo').text(); return 'no error'; } catch (error) { return fail(error); }
}
export async function emit(request) {
  return request.emit('other@later', 'event body', { delayMs: 5, id: 'given' });
}
export async function storage(request) {
  const put = await request.storage.put('k', 'value', { revision: 0 });
  const got = await request.storage.get('k');
  const missing = await request.storage.get('missing');
  const deleted = await request.storage.delete('k', { revision: put });
  const page = await request.storage.list('p', { limit: 2, after: 'p1' });
  return { put, got: got && { value: got.value.toString(), revision: got.revision }, missing: missing ?? null, deleted, page };
}
export function log(request) {
  request.log.info('hello', { n: 1 });
  request.log.error('bad');
  return 'ok';
}
export function emitLater(request) {
  request.emit('other@later', 'not awaited');
  return 'returned';
}
export function ping() { return 'pong'; }
export async function waitCall(request) {
  try { await request.call('other@slow').text(); return 'answered'; } catch (error) { return fail(error); }
}
`;

let host: string;
let appDir: string;
const peers: Peer[] = [];

beforeAll(() => {
  host = nodeRuntimeHost();
  appDir = mkdtempSync(join(tmpdir(), 'node-services-app-'));
  writeFileSync(join(appDir, 'package.json'), '{"type":"module"}');
  writeFileSync(join(appDir, 'index.js'), FIXTURE);
});

afterAll(() => rmSync(appDir, { recursive: true, force: true }));

afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

async function worker(options: Partial<PeerOptions> = {}): Promise<Peer> {
  const peer = await startPeer({ command: process.execPath, args: [host], cwd: appDir, ...options });
  peers.push(peer);
  await peer.handshake;
  return peer;
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString();

describe('node runtime services', () => {
  it('handshakes with protocol 2 when the engine speaks 2, and 1 when it speaks 1 (services then fail)', async () => {
    const v2 = await worker();
    expect((await v2.handshake).protocol).toBe(2);
    const v1 = await worker({ protocol: 1 });
    expect((await v1.handshake).protocol).toBe(1);
    const result = await v1.invoke('callFails');
    expect(JSON.parse(text(result.chunks))).toMatchObject({ code: 'unsupported', name: 'ServiceError' });
    expect(v1.services).toEqual([]);
  });

  it('call: SERVICE on a worker channel with target, headers, timeout_ms and parent; the answer streams back', async () => {
    const peer = await worker({ onService: (request) => ({ chunks: ['x', 'y', Buffer.from(request.body)] }) });
    const result = await peer.invoke('call');
    expect(JSON.parse(text(result.chunks))).toEqual(['x', 'y', 'body']);
    const [request] = peer.services;
    expect(request.channel).toBeGreaterThanOrEqual(0x80000001);
    expect(request).toMatchObject({ service: 'call', args: { target: 'other@echo', headers: { h: 'v' }, timeout_ms: 1500 }, body: Buffer.from('body') });
    expect(request.parent).toBeGreaterThan(0);
    const streamed = await peer.invoke('call', '', { headers: { streamed: '1' } });
    expect(JSON.parse(text(streamed.chunks))).toEqual(['x', 'y', 'ab']);
    expect(peer.services[1].channel).toBeGreaterThan(request.channel);
  });

  it('an ERROR answer rejects with a ServiceError carrying the engine code', async () => {
    const peer = await worker({ onService: () => ({ error: { code: 'deadline_exceeded', message: 'too slow' } }) });
    const result = await peer.invoke('callFails');
    expect(JSON.parse(text(result.chunks))).toEqual({ code: 'deadline_exceeded', message: 'too slow', name: 'ServiceError' });
  });

  it('emit and storage: the spec args, values base64 in answers', async () => {
    const peer = await worker({
      onService: (request) => {
        if (request.service === 'emit') return { json: { id: 'given', duplicate: false } };
        const method = request.args.method;
        if (method === 'put') return { json: { revision: 7 } };
        if (method === 'get') return { json: request.args.key === 'k' ? { found: true, revision: 7, value: Buffer.from('value').toString('base64') } : { found: false } };
        if (method === 'delete') return { json: { deleted: true } };
        return { json: { keys: ['p2', 'p3'], next: 'p3' } };
      },
    });
    expect(JSON.parse(text((await peer.invoke('emit')).chunks))).toEqual({ id: 'given', duplicate: false });
    expect(peer.services[0]).toMatchObject({ service: 'emit', args: { target: 'other@later', delay_ms: 5, id: 'given' }, body: Buffer.from('event body') });
    const answer = JSON.parse(text((await peer.invoke('storage')).chunks));
    expect(answer).toEqual({ put: 7, got: { value: 'value', revision: 7 }, missing: null, deleted: true, page: { keys: ['p2', 'p3'], next: 'p3' } });
    const storage = peer.services.slice(1);
    expect(storage.map((request) => request.args)).toEqual([
      { method: 'put', key: 'k', revision: 0 },
      { method: 'get', key: 'k' },
      { method: 'get', key: 'missing' },
      { method: 'delete', key: 'k', revision: 7 },
      { method: 'list', prefix: 'p', limit: 2, after: 'p1' },
    ]);
    expect(storage[0].body.toString()).toBe('value');
  });

  it('log: LOG frames on the invocation channel', async () => {
    const peer = await worker();
    await peer.invoke('log');
    expect(peer.logs).toHaveLength(2);
    expect(peer.logs[0]).toMatchObject({ level: 'info', message: 'hello', fields: { n: 1 } });
    expect(peer.logs[1]).toMatchObject({ level: 'error', message: 'bad' });
    expect(peer.logs[0].channel).toBeGreaterThan(0);
    expect(peer.logs[0].channel).toBeLessThan(0x80000000);
  });

  it('cancelling the invocation cancels its open calls: ERROR cancelled on the worker channel, the handler unblocks', async () => {
    const peer = await worker({ onService: () => new Promise(() => {}) });
    const stream = peer.invokeStream('waitCall');
    stream.end();
    const deadline = Date.now() + 10_000;
    while (peer.services.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    peer.cancel(stream.channel, 'cancelled');
    const channel = peer.services[0].channel;
    while (!peer.serviceCancels.has(channel) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(peer.serviceCancels.get(channel)?.code).toBe('cancelled');
  });

  it('an emit the handler did not await, cancelled by the engine after the handler returned, does not take the worker down', async () => {
    const peer = await worker({ onService: () => new Promise(() => {}) });
    expect(text((await peer.invoke('emitLater')).chunks)).toBe('returned');
    const deadline = Date.now() + 10_000;
    while (peer.services.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    // What the engine does when the parent invocation ends with the emit still open.
    peer.sendRaw(encodeJson(FrameType.ERROR, peer.services[0].channel, { code: 'cancelled', message: 'the invocation it belongs to has finished' }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(text((await peer.invoke('ping')).chunks)).toBe('pong');
    expect(peer.stderr.join('')).not.toContain('ServiceError');
  });
});
