import { credentials, loadPackageDefinition, status, type Client, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { pipeResult } from '../../engine/api/call-utils.js';
import { connect } from '../../engine/api/client.js';
import type { Invocation } from '../../engine/api/facade.js';
import { startGrpcServer } from '../../engine/api/grpc-server.js';
import { collect, failure, waitUntil } from './helpers.js';
import { TransportTestFacade } from './transport-facade.js';

const require = createRequire(import.meta.url);

describe('Invoke result backpressure', () => {
  it('a reading client gets every chunk of a long result', async () => {
    const facade = new TransportTestFacade();
    const server = await startGrpcServer(facade, { listen: '127.0.0.1:0', maxPendingBytes: 8 * 1024 * 1024, slowReaderMs: 150 });
    const client = connect(server.address);
    try {
      const chunks = await collect(client.invoke('test@flood', '40'));
      expect(chunks.length).toBe(40);
      expect(chunks[39][0]).toBe(39);
      expect(facade.cancelled).toEqual([]);
    } finally {
      client.close();
      await server.shutdown(1000);
    }
  });

  /** A real object-mode Writable whose consumer takes one message per `release()`. */
  function gatedStream() {
    const received: Buffer[] = [];
    const waiting: Array<() => void> = [];
    const errors: Array<{ code: number; details: string }> = [];
    let ended = false;
    const stream = new Writable({
      objectMode: true,
      highWaterMark: 2,
      write(message: { data: Buffer }, _encoding, callback) {
        received.push(message.data);
        waiting.push(() => callback());
      },
      final(callback) {
        ended = true;
        callback();
      },
    });
    stream.on('error', (status: { code: number; details: string }) => errors.push(status));
    return { stream, received, errors, ended: () => ended, release: () => waiting.shift()?.() };
  }

  const flood = (facade: TransportTestFacade): Invocation => facade.invoke({ app: 'test', event: 'flood', headers: {}, deadline: 0 });

  it('chunks wait for drain in order; a reader that keeps taking gets the whole result', async () => {
    const facade = new TransportTestFacade();
    const gate = gatedStream();
    const invocation = flood(facade);
    pipeResult(invocation, gate.stream, { maxPendingBytes: 1024, slowReaderMs: 1000 });
    invocation.write(Buffer.from('20'));
    invocation.end();
    while (!gate.ended()) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      gate.release();
    }
    expect(gate.received.map((chunk) => chunk[0])).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(facade.cancelled).toEqual([]);
  });

  it('a reader that stops taking is cut off past maxPendingBytes and slowReaderMs, and the invocation cancelled', async () => {
    const facade = new TransportTestFacade();
    const gate = gatedStream();
    const invocation = flood(facade);
    pipeResult(invocation, gate.stream, { maxPendingBytes: 4 * 1024 * 1024, slowReaderMs: 100 });
    invocation.write(Buffer.from('200'));
    invocation.end();
    await waitUntil(() => gate.errors.length > 0);
    expect(gate.errors[0]).toMatchObject({ code: status.RESOURCE_EXHAUSTED });
    expect(gate.errors[0].details).toMatch(/reads the result too slowly/);
    expect(facade.cancelled).toEqual(['the client reads the result too slowly']);
    expect(gate.received.length).toBeLessThan(200);
  });
});

describe('gRPC server shutdown', () => {
  it('reports NOT_SERVING, lets a session finish its calls and refuses new ones on it', async () => {
    const facade = new TransportTestFacade();
    const server = await startGrpcServer(facade, { listen: '127.0.0.1:0' });
    const client = connect(server.address);
    const session = client.session();
    const slow = session.call('test@slow', '200');
    await waitUntil(() => facade.open.size === 1);
    const healthProto = join(dirname(require.resolve('grpc-health-check/package.json')), 'proto/health/v1/health.proto');
    const health = ((loadPackageDefinition(loadSync(healthProto, { enums: String })).grpc as GrpcObject).health as GrpcObject).v1 as GrpcObject;
    const healthClient = new (health.Health as ServiceClientConstructor)(server.address, credentials.createInsecure()) as Client & Record<string, any>;
    const statuses: string[] = [];
    const watch = healthClient.Watch({ service: 'cocaine.v1.Engine' });
    watch.on('data', (reply: { status: string }) => statuses.push(reply.status));
    watch.on('error', () => undefined);
    await waitUntil(() => statuses.length === 1);
    const stopped = server.shutdown(3000);
    const late = failure(session.call('test@echo', 'late'));
    expect(Buffer.concat(await slow).toString()).toBe('200');
    expect(await late).toMatchObject({ code: 'shutting_down', status: status.RESOURCE_EXHAUSTED });
    await waitUntil(() => statuses.length === 2);
    expect(statuses).toEqual(['SERVING', 'NOT_SERVING']);
    // A health watch never ends by itself; once it is gone the drained server stops well within the grace.
    watch.cancel();
    const started = Date.now();
    await stopped;
    expect(Date.now() - started).toBeLessThan(2000);
    healthClient.close();
    client.close();
  });

  it('refuses bad options naming the field', async () => {
    await expect(startGrpcServer(new TransportTestFacade(), { listen: 'nope' })).rejects.toThrow(/listen/);
    await expect(startGrpcServer(new TransportTestFacade(), { listen: '127.0.0.1:0', maxMessageBytes: 5 })).rejects.toThrow(/maxMessageBytes/);
  });
});
