/** The Perl plugin's static parts, and how resolveInterpreter picks and refuses interpreters. */
import { chmodSync, existsSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PLUGIN_API_VERSION, type WorkerLaunchContext } from '../../plugins/types.js';
import perlPlugin from '../../plugins/perl/index.js';
import { resolveInterpreter } from '../../plugins/resolve-interpreter.js';
import { packageRoot, packageVersion } from '../../engine/util/paths.js';

const context = (placement: 'host' | 'container'): WorkerLaunchContext => ({
  app: 'a', workerId: 'w', entrypoint: 'app.pl', appDir: '/app', endpoint: '/e.sock',
  pluginDir: placement === 'host' ? perlPlugin.runtimeDir : '/cocaine/plugin', environment: {}, placement,
});

describe('perl plugin', () => {
  it('declares its name, API version, version and the runtime directory in the package', () => {
    expect(perlPlugin).toMatchObject({ name: 'perl', apiVersion: PLUGIN_API_VERSION, version: packageVersion() });
    expect(perlPlugin.runtimeDir).toBe(join(packageRoot(), 'plugins', 'perl', 'runtime'));
    expect(existsSync(join(perlPlugin.runtimeDir, 'cocaine_worker.pl'))).toBe(true);
    expect(existsSync(join(perlPlugin.runtimeDir, 'Cocaine', 'Worker.pm'))).toBe(true);
  });

  it("launches the real perl on the host and the image's perl in a container", () => {
    expect(perlPlugin.launch(context('host'))).toEqual({
      command: realpathSync('/usr/bin/perl'),
      args: [`-I${perlPlugin.runtimeDir}`, join(perlPlugin.runtimeDir, 'cocaine_worker.pl')],
      env: {},
    });
    expect(perlPlugin.launch(context('container'))).toEqual({ command: 'perl', args: ['-I/cocaine/plugin', '/cocaine/plugin/cocaine_worker.pl'], env: {} });
    expect(perlPlugin.dockerfile!('debian:12')).toBe('FROM debian:12\nCOPY . /app\nWORKDIR /app\n');
  });
});

describe('resolveInterpreter with candidates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'resolve-interpreter-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('skips shim scripts and interpreters that fail the version check, naming each', () => {
    const shim = join(dir, 'shim-python3');
    writeFileSync(shim, '#!/bin/sh\nexec /usr/bin/python3 "$@"\n');
    chmodSync(shim, 0o755);
    const notPython = join(dir, 'not-python3');
    symlinkSync('/bin/sh', notPython);
    const candidates = [join(dir, 'missing'), shim, notPython];
    expect(() => resolveInterpreter('python3', candidates)).toThrow(
      expect.objectContaining({
        code: 'spawn_failed',
        message: expect.stringMatching(/a python3 of version 3\.9 or newer.*shim-python3 is a shim script.*not-python3: (does not run|printed)/),
      }),
    );
    // With the real one among them, the real one's realpath wins, past the rejected ones.
    expect(resolveInterpreter('python3', [shim, notPython, '/usr/bin/python3'])).toBe(realpathSync('/usr/bin/python3'));
  });

  it('says so when no candidate exists', () => {
    expect(() => resolveInterpreter('perl', [join(dir, 'nope')])).toThrow(/cannot find perl: looked in .*nope; none found/);
  });
});
