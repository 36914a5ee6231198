import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcessIsolate } from '../../engine/isolate/process.js';
import { AppEngine } from '../../engine/pool/app-engine.js';
import { AppLogs } from '../../engine/pool/app-logs.js';
import { parseManifest, resolveProfile } from '../../manifests/validate.js';
import nodePlugin from '../../plugins/node/index.js';
import { EXAMPLES, tempDir, waitFor } from '../helpers/engine.js';

const runDir = tempDir('app-logs');
const isolate = new ProcessIsolate({ runDir, engineId: 'app-logs-test' });
const slowDir = join(EXAMPLES, 'node-slow');

afterAll(() => isolate.close());

function call(engine: AppEngine, event: string): Promise<void> {
  const invocation = engine.invoke({ app: engine.name, event, headers: {}, deadline: 0 });
  invocation.end();
  return new Promise((resolve, reject) => invocation.listen({ onChunk: () => undefined, onEnd: resolve, onError: reject }));
}

describe('AppLogs over raw worker output', () => {
  it('serves recent lines and follows new ones, split from the chunks on demand', async () => {
    const logs = new AppLogs();
    const engine = new AppEngine({
      app: 'node-slow',
      manifest: parseManifest(readFileSync(join(slowDir, 'manifest.yaml')), 'manifest.yaml'),
      profile: resolveProfile({ 'pool-limit': 1 }, 'p'),
      profileName: 'p',
      plugin: nodePlugin,
      isolate,
      limits: {},
      socketDir: join(runDir, 's'),
      logs,
      prepareAppDir: async () => slowDir,
      saveCrashlog: async () => undefined,
    });
    await call(engine, 'log');
    await waitFor('the first lines', () => logs.recent(100).filter((line) => line.line.startsWith('log line')).length === 2);
    const recent = logs.recent(100);
    expect(recent.find((line) => line.stream === 'stdout')?.line).toBe('log line to stdout');
    expect(recent.find((line) => line.stream === 'stderr')?.line).toBe('log line to stderr');
    expect(recent.some((line) => line.stream === 'engine' && /ready/.test(line.line))).toBe(true);

    const abort = new AbortController();
    const followed: string[] = [];
    const following = (async () => {
      for await (const line of logs.read({ lines: 0, follow: true, signal: abort.signal })) {
        followed.push(`${line.stream}:${line.line}`);
        if (followed.length === 2) abort.abort();
      }
    })();
    await call(engine, 'log');
    await following;
    expect(followed.sort()).toEqual(['stderr:log line to stderr', 'stdout:log line to stdout']);
    await engine.stop('test done', 0);
  });
});
