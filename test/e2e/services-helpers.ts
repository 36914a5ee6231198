import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, cliJson, tempDir, type RunningEngine } from '../helpers/engine.js';

export const SERVICES_A = join(ROOT, 'test/fixtures/services-a');
export const SERVICES_B = join(ROOT, 'test/fixtures/services-b');

/** Uploads a profile from YAML text. */
export async function uploadProfile(engine: RunningEngine, name: string, yaml: string): Promise<void> {
  const file = join(tempDir('svc-profile'), `${name}.yaml`);
  writeFileSync(file, yaml);
  await cliJson(engine, ['profile', 'upload', name, file]);
}

export async function uploadApps(engine: RunningEngine, profiles: { a?: string; b?: string } = {}): Promise<void> {
  await cliJson(engine, ['app', 'upload', SERVICES_A, ...(profiles.a ? ['--profile', profiles.a] : [])]);
  await cliJson(engine, ['app', 'upload', SERVICES_B, ...(profiles.b ? ['--profile', profiles.b] : [])]);
}
