import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tar from 'tar-stream';
import { buildAppImage } from '../../engine/isolate/docker-build.js';
import { DockerIsolate } from '../../engine/isolate/docker.js';
import type { OutputStream, ResourceLimits, SpawnSpec, WorkerProcess } from '../../engine/isolate/types.js';
import { describeIsolateContract } from '../contracts/isolate.contract.js';
import { buildBaseImage } from '../helpers/docker-images.js';
import { startDockerd, type Dockerd } from '../helpers/dockerd.js';

const IMAGE = 'cocaine-test-base:sh-python3';
let dockerd: Dockerd;

beforeAll(async () => {
  dockerd = await startDockerd();
  const built = await buildBaseImage(dockerd.docker, { tag: IMAGE, include: ['sh', 'python3'] });
  console.log(`dockerd answered after ${dockerd.startMillis} ms; base image (${(built.bytes / 1e6).toFixed(1)} MB) built in ${built.millis} ms`);
});

afterAll(async () => {
  await dockerd?.stop();
});

/** Whether `pid` (as the worker's pid namespace numbers it) still runs; the namespace is noted on first use. */
function processInContainer(namespaces: Map<string, string>) {
  return async (worker: WorkerProcess, pid: number): Promise<boolean> => {
    let ns = namespaces.get(worker.workerId);
    if (ns === undefined) {
      const [found] = await dockerd.docker.listContainers({ filters: { label: [`cocaine.worker=${worker.workerId}`] } });
      if (!found) return false;
      const info = await dockerd.docker.getContainer(found.Id).inspect();
      ns = readlinkSync(`/proc/${info.State.Pid}/ns/pid`);
      namespaces.set(worker.workerId, ns);
    }
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (readlinkSync(`/proc/${entry}/ns/pid`) !== ns) continue;
        const status = readFileSync(`/proc/${entry}/status`, 'utf8');
        const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).pop();
        if (Number(nspid) === pid && !/^State:\s+Z/m.test(status)) return true;
      } catch {
        // Gone meanwhile.
      }
    }
    return false;
  };
}

describeIsolateContract('docker', async () => {
  const runDir = mkdtempSync('/tmp/docker-isolate-run-');
  const engineId = `contract-${randomUUID().slice(0, 8)}`;
  const make = () => new DockerIsolate({ socketPath: dockerd.socketPath, engineId, runDir });
  return {
    isolate: make(),
    engineId,
    reopen: async () => make(),
    isolateArgs: { image: IMAGE },
    processExists: processInContainer(new Map()),
    cleanup: async () => {
      await make().cleanupOrphans(engineId);
      rmSync(runDir, { recursive: true, force: true });
    },
  };
});

describe('DockerIsolate', () => {
  let appDir: string;
  let socketDir: string;
  let pluginDir: string;
  let isolate: DockerIsolate;
  const engineId = `docker-${randomUUID().slice(0, 8)}`;

  beforeAll(() => {
    appDir = mkdtempSync('/tmp/docker-isolate-app-');
    socketDir = mkdtempSync('/tmp/docker-isolate-sock-');
    pluginDir = mkdtempSync('/tmp/docker-isolate-plugin-');
    isolate = new DockerIsolate({ socketPath: dockerd.socketPath, engineId, runDir: appDir, defaultImage: IMAGE });
  });
  afterAll(async () => {
    await isolate.close();
    await isolate.cleanupOrphans(engineId);
    for (const dir of [appDir, socketDir, pluginDir]) rmSync(dir, { recursive: true, force: true });
  });

  const spec = (command: string, args: string[], options: { limits?: ResourceLimits; isolateArgs?: Record<string, unknown>; env?: Record<string, string> } = {}): SpawnSpec => ({
    workerId: `w-${randomUUID().slice(0, 8)}`,
    app: 'docker-app',
    command,
    args,
    env: { PATH: '/usr/bin:/bin', ...options.env },
    appDir,
    socketDir,
    pluginDir,
    limits: options.limits ?? {},
    isolateArgs: options.isolateArgs ?? {},
  });

  const run = async (s: SpawnSpec) => {
    const worker = await isolate.spawn(s);
    const lines: Array<[OutputStream, string]> = [];
    worker.onOutput((stream, line) => lines.push([stream, line]));
    return { worker, lines, stdout: () => lines.filter(([stream]) => stream === 'stdout').map(([, line]) => line) };
  };

  const containerOf = async (workerId: string) => {
    const [found] = await dockerd.docker.listContainers({ all: true, filters: { label: [`cocaine.worker=${workerId}`] } });
    return found;
  };

  it('has no network: only the loopback interface, and the host loopback is out of reach', async () => {
    const server = createServer((socket) => socket.end('reached\n'));
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    const port = (server.address() as AddressInfo).port;
    const hostAddresses = ['127.0.0.1', ...Object.values(networkInterfaces()).flat().filter((a) => a && a.family === 'IPv4' && !a.internal).map((a) => a!.address)];
    const probe = [
      'import socket, sys',
      'print("interfaces", sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]))',
      'for host in sys.argv[1:]:',
      '    try:',
      `        socket.create_connection((host, ${port}), timeout=2).recv(16); print("connected", host)`,
      '    except OSError as e:',
      '        print("refused", host, type(e).__name__)',
    ].join('\n');
    try {
      const { worker, stdout } = await run(spec('/usr/bin/python3', ['-c', probe, ...hostAddresses]));
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      expect(stdout()[0]).toBe("interfaces ['lo']");
      expect(stdout().slice(1)).toEqual(hostAddresses.map((host) => expect.stringMatching(new RegExp(`^refused ${host.replace(/\./g, '\\.')} `))));
    } finally {
      server.close();
    }
  });

  it('with isolate.args.network the container joins that network', async () => {
    const { worker, stdout } = await run(spec('/bin/cat', ['/proc/net/dev'], { isolateArgs: { network: 'host' } }));
    expect(await worker.exited).toMatchObject({ code: 0 });
    expect(stdout().length).toBeGreaterThan(3);
  });

  it('the root file system and the app are read-only; /tmp is writable', async () => {
    const script = 'echo x > /probe && echo root-writable; echo y > /app/probe && echo app-writable; echo z > /tmp/probe && cat /tmp/probe';
    const { worker, lines } = await run(spec('/bin/sh', ['-c', script]));
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect(lines.filter(([stream]) => stream === 'stdout').map(([, line]) => line)).toEqual(['z']);
    expect(lines.filter(([stream]) => stream === 'stderr').map(([, line]) => line).join('\n')).toMatch(/Read-only file system[\s\S]*Read-only file system/);
  });

  it('a memory bomb is killed at the memory limit and the reason says so', async () => {
    const s = spec('/usr/bin/python3', ['-c', 'a = []\nwhile True: a.append(b"x" * (1 << 20))'], { limits: { memoryBytes: 64 * 1024 * 1024 } });
    const { worker } = await run(s);
    expect(await worker.exited).toEqual({ code: null, signal: 'SIGKILL', reason: 'out of memory (limit 64 MiB)' });
    expect(await containerOf(s.workerId)).toBeUndefined();
  });

  it('the pids limit stops forks', async () => {
    const script = 'i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo all-started';
    const { worker, lines } = await run(spec('/bin/sh', ['-c', script], { limits: { pids: 16 } }));
    const exit = await worker.exited;
    expect(lines).not.toContainEqual(['stdout', 'all-started']);
    expect(lines.filter(([stream]) => stream === 'stderr').map(([, line]) => line).join('\n')).toMatch(/fork/i);
    expect(exit.code).not.toBe(0);
  });

  it('labels the container and applies the limits and the mounts; removes it after exit', async () => {
    const s = spec('/bin/sleep', ['30'], { limits: { memoryBytes: 64 * 1024 * 1024, cpus: 0.5, cpuWeight: 200, pids: 40 } });
    const { worker } = await run(s);
    const found = (await containerOf(s.workerId))!;
    expect(found.Labels).toEqual({ 'cocaine.engine': engineId, 'cocaine.app': 'docker-app', 'cocaine.worker': s.workerId });
    const info = await dockerd.docker.getContainer(found.Id).inspect();
    expect(info.HostConfig).toMatchObject({ Memory: 64 * 1024 * 1024, MemorySwap: 64 * 1024 * 1024, NanoCpus: 500_000_000, CpuShares: 2048, PidsLimit: 40, NetworkMode: 'none', ReadonlyRootfs: true });
    expect(info.Config.WorkingDir).toBe('/app');
    expect(info.HostConfig.Binds).toEqual([`${appDir}:/app:ro`, `${socketDir}:/run/cocaine`, `${pluginDir}:/opt/cocaine/plugin:ro`]);
    worker.signal('SIGTERM');
    expect(await worker.exited).toEqual({ code: null, signal: 'SIGTERM' });
    expect(await containerOf(s.workerId)).toBeUndefined();
  });

  it('the worker reaches the engine through its own socket, mounted alone when the engine listens first', async () => {
    const workerId = `w-${randomUUID().slice(0, 8)}`;
    const paths = isolate.workerPaths({ appDir, socketDir, pluginDir, workerId });
    expect(paths).toEqual({ appDir: '/app', endpoint: `/run/cocaine/${workerId}.sock`, pluginDir: '/opt/cocaine/plugin' });
    const received: string[] = [];
    const server = createServer((socket) => socket.on('data', (data) => received.push(data.toString())));
    await new Promise<void>((resolve) => server.listen(join(socketDir, `${workerId}.sock`), resolve));
    try {
      // A neighbour's socket must not be visible.
      writeFileSync(join(socketDir, 'other-worker.sock'), '');
      const script = 'import os, socket\ns = socket.socket(socket.AF_UNIX)\ns.connect(os.environ["ENDPOINT"])\ns.sendall(b"hello from the container")\nprint(sorted(os.listdir("/run/cocaine")))';
      const { worker, stdout } = await run({ ...spec('/usr/bin/python3', ['-c', script], { env: { ENDPOINT: paths.endpoint } }), workerId });
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      expect(stdout()).toEqual([`['${workerId}.sock']`]);
      await expect.poll(() => received.join('')).toBe('hello from the container');
    } finally {
      server.close();
      rmSync(join(socketDir, 'other-worker.sock'), { force: true });
    }
  });

  it('a plugin runtime inside the package keeps its layout under /opt/cocaine', async () => {
    const packageRoot = mkdtempSync('/tmp/docker-isolate-pkg-');
    try {
      const runtime = join(packageRoot, 'dist', 'plugins', 'fake', 'runtime');
      mkdirSync(runtime, { recursive: true });
      mkdirSync(join(packageRoot, 'dist', 'engine', 'protocol'), { recursive: true });
      writeFileSync(join(packageRoot, 'dist', 'engine', 'protocol', 'frames.txt'), 'frames reachable\n');
      writeFileSync(join(runtime, 'run.sh'), 'cat "${0%/*}/../../../engine/protocol/frames.txt"\n');
      chmodSync(join(runtime, 'run.sh'), 0o755);
      const packaged = new DockerIsolate({ socketPath: dockerd.socketPath, engineId, runDir: appDir, defaultImage: IMAGE, packageRoot });
      const paths = packaged.workerPaths({ appDir, socketDir, pluginDir: runtime, workerId: 'x' });
      expect(paths.pluginDir).toBe('/opt/cocaine/dist/plugins/fake/runtime');
      const worker = await packaged.spawn({ ...spec('/bin/sh', [`${paths.pluginDir}/run.sh`]), pluginDir: runtime });
      const lines: string[] = [];
      worker.onOutput((_stream, line) => lines.push(line));
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      expect(lines).toEqual(['frames reachable']);
    } finally {
      rmSync(packageRoot, { recursive: true, force: true });
    }
  });

  it('runs a command relative to /app, and refuses a missing one before starting anything', async () => {
    writeFileSync(join(appDir, 'hello.sh'), '#!/bin/sh\necho hello from "$(pwd)"\n');
    chmodSync(join(appDir, 'hello.sh'), 0o755);
    writeFileSync(join(appDir, 'not-executable.sh'), '#!/bin/sh\n');
    const { worker, stdout } = await run(spec('./hello.sh', []));
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect(stdout()).toEqual(['hello from /app']);
    for (const command of ['./missing.sh', './not-executable.sh', 'no-such-tool']) {
      const s = spec(command, []);
      await expect(isolate.spawn(s)).rejects.toMatchObject({ code: 'spawn_failed', message: expect.stringContaining(command) });
      expect(await containerOf(s.workerId)).toBeUndefined();
    }
  });

  it('refuses a spawn without an image, naming the field', async () => {
    const bare = new DockerIsolate({ socketPath: dockerd.socketPath, engineId, runDir: appDir });
    await expect(bare.spawn(spec('/bin/true', []))).rejects.toMatchObject({ code: 'invalid_profile', field: 'isolate.args.image' });
    await expect(bare.spawn(spec('/bin/true', [], { isolateArgs: { image: 'cocaine-no-such-image:1' } }))).rejects.toMatchObject({
      code: 'spawn_failed',
      message: expect.stringContaining('cocaine-no-such-image:1'),
    });
  });

  it('cleanupOrphans removes the containers labelled with a dead engine, or with any engine, but not its own live ones', async () => {
    const orphan = async (engine: string) => {
      const container = await dockerd.docker.createContainer({
        Image: IMAGE,
        Cmd: ['/bin/sleep', '300'],
        Labels: { 'cocaine.engine': engine, 'cocaine.app': 'a', 'cocaine.worker': `w-${engine}` },
        HostConfig: { NetworkMode: 'none', Init: true },
      });
      await container.start();
      return container.id;
    };
    const dead = await orphan(`dead-${randomUUID().slice(0, 8)}`);
    const other = await orphan(`other-${randomUUID().slice(0, 8)}`);
    const unlabelled = await dockerd.docker.createContainer({ Image: IMAGE, Cmd: ['/bin/true'] });
    const { worker } = await run(spec('/bin/sleep', ['300']));
    const ids = async () => (await dockerd.docker.listContainers({ all: true })).map((c) => c.Id);
    const deadEngine = (await dockerd.docker.getContainer(dead).inspect()).Config.Labels['cocaine.engine']!;
    await new DockerIsolate({ socketPath: dockerd.socketPath, engineId: deadEngine, runDir: appDir }).cleanupOrphans(deadEngine);
    expect(await ids()).not.toContain(dead);
    expect(await ids()).toContain(other);
    await isolate.cleanupOrphans();
    const left = await ids();
    expect(left).not.toContain(other);
    expect(left).toContain(unlabelled.id);
    expect(left).toContain((await containerOf(worker.workerId))!.Id);
    worker.signal('SIGKILL');
    expect(await worker.exited).toMatchObject({ signal: 'SIGKILL' });
    await unlabelled.remove({ force: true });
  });

  it('buildAppImage builds from a context tar, streaming the output; the isolate runs the image', async () => {
    const progress: string[] = [];
    const built = await buildAppImage(dockerd.docker, {
      contextTar: await contextTar({ Dockerfile: `FROM ${IMAGE}\nCOPY greeting.txt /greeting.txt\n`, 'greeting.txt': 'built into the image\n' }),
      tag: 'cocaine-app/greeter:1',
      labels: { 'cocaine.app': 'greeter' },
      onProgress: (line) => progress.push(line),
    });
    expect(built.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(progress.some((line) => /^Step 2\/\d : COPY greeting\.txt/.test(line))).toBe(true);
    expect((await dockerd.docker.getImage(built.imageId).inspect()).Config.Labels).toMatchObject({ 'cocaine.app': 'greeter' });
    const { worker, stdout } = await run(spec('/bin/cat', ['/greeting.txt'], { isolateArgs: { image: 'cocaine-app/greeter:1' } }));
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    expect(stdout()).toEqual(['built into the image']);
  });

  it('buildAppImage reports a failing step with the end of the output', async () => {
    const failing = buildAppImage(dockerd.docker, {
      contextTar: await contextTar({ Dockerfile: `FROM ${IMAGE}\nRUN echo about to fail && exit 3\n` }),
      tag: 'cocaine-app/broken:1',
      network: 'none',
    });
    await expect(failing).rejects.toMatchObject({ code: 'invalid_argument', field: 'Dockerfile', message: expect.stringMatching(/returned a non-zero code: 3[\s\S]*about to fail/) });
    await expect(buildAppImage(dockerd.docker, { contextTar: Buffer.alloc(0), tag: 'x:1' })).rejects.toMatchObject({ field: 'contextTar' });
    await expect(buildAppImage(dockerd.docker, { contextTar: Buffer.from('x'), tag: 'Bad Tag' })).rejects.toMatchObject({ field: 'tag' });
  });

  it('cold start: spawn to first output line, against docker run and a bare process', async () => {
    const rounds = 5;
    const isolateTimes: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      const worker = await isolate.spawn(spec('/bin/sh', ['-c', 'echo x']));
      await new Promise<void>((resolve) => worker.onOutput(() => resolve()));
      isolateTimes.push(performance.now() - started);
      await worker.exited;
    }
    const env = { ...process.env, DOCKER_HOST: `unix://${dockerd.socketPath}` };
    const cliTimes: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      await firstLine(spawn('docker', ['run', '--rm', '--network', 'none', IMAGE, 'sh', '-c', 'echo x'], { env }));
      cliTimes.push(performance.now() - started);
    }
    const processTimes: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      await firstLine(spawn('/bin/sh', ['-c', 'echo x']));
      processTimes.push(performance.now() - started);
    }
    const isolateMedian = median(isolateTimes);
    const cliMedian = median(cliTimes);
    console.log(
      `cold start to first line (median of ${rounds}): DockerIsolate ${isolateMedian.toFixed(0)} ms, docker run --rm ${cliMedian.toFixed(0)} ms, process ${median(processTimes).toFixed(1)} ms`,
    );
    expect(isolateMedian).toBeLessThan(cliMedian * 1.3);
    await promisify(execFile)('docker', ['ps', '-a'], { env });
  });
});

async function contextTar(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, text] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, text);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function firstLine(child: ReturnType<typeof spawn>): Promise<void> {
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`exit ${code}`))));
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
