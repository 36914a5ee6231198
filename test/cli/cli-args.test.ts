import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGrpcServer, type GrpcServerHandle } from '../../engine/api/grpc-server.js';
import { packageRoot } from '../../engine/util/paths.js';
import { TransportTestFacade } from '../api/transport-facade.js';

const ROOT = packageRoot();
const CLI = join(ROOT, 'dist/deploy-cli/main.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], input?: string): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, COCAINE_ENGINE: '' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  child.stdin.end(input ?? '');
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^cocaine-deploy: \S/);
  return lines[0];
}

describe('cocaine-deploy arguments and errors', () => {
  beforeAll(() => {
    if (!existsSync(CLI)) spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'ignore' });
    expect(existsSync(CLI)).toBe(true);
  });

  it('--help lists the command groups and exit codes; --version prints the version', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    for (const group of ['app', 'profile', 'runlist', 'crashlog', 'invoke', 'enqueue', 'status', 'dead-letters', 'redrive', 'info']) {
      expect(help.stdout).toMatch(new RegExp(`^\\s+${group}\\b`, 'm'));
    }
    expect(help.stdout).toMatch(/Exit codes/);
    const version = await run(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('bad usage exits 1 with one line on stderr', async () => {
    for (const args of [['bogus'], ['app', 'view'], ['--timeout', 'soon', 'info'], ['invoke', 'a@b', '--data', 'x', '--file', 'y'], ['invoke', 'a@b', '--header', 'novalue'], ['app', 'upload', '/nonexistent/dir']]) {
      const result = await run(['--engine', '127.0.0.1:1', ...args]);
      expect({ args, code: result.code }).toEqual({ args, code: 1 });
      oneLine(result.stderr);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('an unreachable engine gives exit 3 and one clear line naming the address', async () => {
    const result = await run(['--engine', '127.0.0.1:1', 'app', 'list']);
    expect(result.code).toBe(3);
    expect(oneLine(result.stderr)).toMatch(/cannot reach the engine at 127\.0\.0\.1:1: .*ECONNREFUSED/);
  });

  describe('against a gRPC server over a test facade', () => {
    let server: GrpcServerHandle;
    const facade = new TransportTestFacade();
    beforeAll(async () => {
      server = await startGrpcServer(facade, { listen: '127.0.0.1:0' });
    });
    afterAll(async () => {
      await server?.shutdown(1000);
    });

    it('invoke writes the result to stdout; stdin is the default body', async () => {
      const fromStdin = await run(['--engine', server.address, 'invoke', 'test@echo'], 'from stdin');
      expect(fromStdin).toEqual({ code: 0, stdout: 'from stdin', stderr: '' });
      const streamed = await run(['--engine', server.address, 'invoke', '--stream', 'test@echo'], 'streamed body');
      expect(streamed.stdout).toBe('streamed body');
      const chunks = await run(['--engine', server.address, 'invoke', 'test@chunks', '--data', '3']);
      expect(chunks.stdout).toBe('012');
    });

    it('maps engine errors to exit codes with one line', async () => {
      const cases: Array<[string[], number, RegExp]> = [
        [['invoke', 'ghost@echo', '--data', 'x'], 2, /ghost/],
        [['invoke', 'test@crash', '--data', 'x'], 3, /exited with code 3/],
        [['--timeout', '100', 'invoke', 'test@hang', '--data', 'x'], 4, /deadline/],
        [['invoke', 'test@fail', '--data', 'x'], 5, /handler says: x/],
        [['invoke', 'no-at', '--data', 'x'], 1, /no '@'/],
        [['app', 'view', 'ghost'], 2, /ghost/],
      ];
      for (const [args, code, message] of cases) {
        const result = await run(['--engine', server.address, ...args]);
        expect({ args, code: result.code }).toEqual({ args, code });
        expect(oneLine(result.stderr)).toMatch(message);
      }
    });

    it('enqueue --lines queues one event per non-empty line over one stream, ids in input order', async () => {
      const plain = await run(['--engine', server.address, 'enqueue', 'test@echo', '--lines'], 'first\n\nsecond\r\nthird');
      expect(plain.code).toBe(0);
      const ids = plain.stdout.trim().split('\n');
      expect(ids).toHaveLength(3);
      expect(ids.map((id) => facade.events.get(id)?.result?.toString())).toEqual(['first', 'second', 'third']);
      const input = Array.from({ length: 1_000 }, (_, i) => `event ${i}`).join('\n');
      const json = await run(['--engine', server.address, '--json', 'enqueue', 'test@echo', '--lines'], input);
      const rows = json.stdout.trim().split('\n').map((line) => JSON.parse(line) as { line: number; id: string });
      expect(rows.map((row) => row.line)).toEqual(Array.from({ length: 1_000 }, (_, i) => i + 1));
      expect(facade.events.get(rows[999]!.id)?.result?.toString()).toBe('event 999');
      const refused = await run(['--engine', server.address, 'enqueue', 'ghost@echo', '--lines'], 'a\nb\n');
      expect(refused.code).toBe(2);
      expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^cocaine-deploy: line 1: .*ghost/), expect.stringMatching(/^cocaine-deploy: line 2: .*ghost/)]);
      const misuse = await run(['--engine', server.address, 'enqueue', 'test@echo', '--lines', '--data', 'x']);
      expect({ code: misuse.code, stderr: oneLine(misuse.stderr) }).toMatchObject({ code: 1, stderr: expect.stringMatching(/--lines reads stdin or --file/) });
    });

    it('--json prints machine-readable results', async () => {
      const apps = JSON.parse((await run(['--engine', server.address, '--json', 'app', 'list'])).stdout);
      expect(apps[0]).toMatchObject({ name: 'test', state: 'running', profile: 'default', plugin: 'node', manifest: { entrypoint: 'index.js' } });
      const enqueued = JSON.parse((await run(['--engine', server.address, '--json', 'enqueue', 'test@echo', '--data', 'q', '--id', 'e1'])).stdout);
      expect(enqueued).toEqual({ id: 'e1', duplicate: false });
      expect((await run(['--engine', server.address, 'enqueue', 'test@echo', '--data', 'q'])).stdout).toMatch(/^ev-\d+\n$/);
      const status = JSON.parse((await run(['--engine', server.address, '--json', 'status', 'e1', '--wait'])).stdout);
      expect(status).toMatchObject({ id: 'e1', target: 'test@echo', state: 'COMPLETED', result: 'q' });
      const profile = JSON.parse((await run(['--engine', server.address, '--json', 'profile', 'view', 'default'])).stdout);
      expect(profile).toEqual({ name: 'default', profile: { 'pool-limit': 10 } });
      const table = await run(['--engine', server.address, 'app', 'list']);
      expect(table.stdout).toMatch(/^NAME\s+STATE\s+PROFILE/);
      expect(table.stdout).toMatch(/^test\s+running\s+default/m);
    });
  });
});
