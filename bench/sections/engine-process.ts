import { join } from 'node:path';
import { connect, type EngineClient } from '../../engine/api/client.js';
import { packDirectory } from '../../deploy-cli/pack.js';
import { packageRoot } from '../../engine/util/paths.js';
import { startEngine, type RunningEngine } from '../../test/helpers/engine.js';

export const EXAMPLES = join(packageRoot(), 'examples');

export interface BenchEngine {
  engine: RunningEngine;
  client: EngineClient;
  stop(): Promise<void>;
}

/** A real engine process on a temp data dir, with a client. */
export async function benchEngine(args: string[] = [], env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<BenchEngine> {
  const engine = await startEngine({ args, env, nodeArgs });
  const client = connect(engine.address);
  return {
    engine,
    client,
    async stop() {
      client.close();
      await engine.stop();
    },
  };
}

/** Uploads an example dir as `app` with its own profile (overrides on top of a bench-friendly base). */
export async function deploy(client: EngineClient, dir: string, app: string, profile: Record<string, unknown> = {}): Promise<void> {
  const profileName = `bench-${app}`;
  const content = JSON.stringify({ 'idle-timeout': 600, 'queue-limit': 100_000, ...profile });
  await client.uploadProfile(profileName, Buffer.from(content), `${profileName}.json`);
  await client.uploadApp({ name: app, archive: await packDirectory(dir), profile: profileName });
}
