/** The Perl example apps (examples/perl-*), run by the Perl runtime through the protocol peer. */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { packageRoot } from '../../engine/util/paths.js';
import perlPlugin from '../../plugins/perl/index.js';
import { startPeer, type Peer } from '../helpers/protocol-peer.js';

const peers: Peer[] = [];

afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
});

async function example(name: string): Promise<Peer> {
  const appDir = join(packageRoot(), 'examples', name);
  const spec = perlPlugin.launch({
    app: name, workerId: 'unused', entrypoint: 'app.pl', appDir, endpoint: 'unused',
    pluginDir: perlPlugin.runtimeDir, environment: {}, placement: 'host',
  });
  const peer = await startPeer({ command: spec.command, args: spec.args, cwd: appDir, entrypoint: 'app.pl', env: spec.env });
  peers.push(peer);
  return peer;
}

const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString();

describe('perl examples', () => {
  it('perl-echo: echo and ping', async () => {
    const peer = await example('perl-echo');
    expect((await peer.handshake).events).toEqual(['echo', 'ping']);
    expect(text((await peer.invoke('echo', 'hello')).chunks)).toBe('hello');
    expect(text((await peer.invoke('ping')).chunks)).toBe('pong');
  });

  it('perl-stream: count streams N lines; upper answers each chunk as it arrives', async () => {
    const peer = await example('perl-stream');
    expect((await peer.invoke('count', '5')).chunks.map(String)).toEqual(['0\n', '1\n', '2\n', '3\n', '4\n']);
    const stream = peer.invokeStream('upper');
    const iterator = stream.chunks[Symbol.asyncIterator]();
    stream.write('hello ');
    expect(String((await iterator.next()).value)).toBe('HELLO ');
    stream.write('world');
    expect(String((await iterator.next()).value)).toBe('WORLD');
    stream.end();
    expect((await iterator.next()).done).toBe(true);
  });

  it('perl-wordcount: counts words split across chunks once', async () => {
    const peer = await example('perl-wordcount');
    const body = ['the qu', 'ick brown', ' fox\njumps ', '', 'over\n', '  the lazy dog\n'];
    const { chunks, error } = await peer.invoke('wordcount', body);
    expect(error).toBeUndefined();
    expect(JSON.parse(text(chunks))).toEqual({ words: 9, lines: 3 });
  });
});
