/**
 * The kit run against a plugin outside this repository:
 *   npm run conformance -- --plugin NAME --app DIR [--plugins-dir DIR] [--isolate TYPE] ...
 * scripts/conformance.mjs sets these variables; vitest.config.ts includes this file only then.
 */
import { describeConformance } from './kit.js';

const env = process.env;
const plugin = env.COCAINE_CONFORMANCE_PLUGIN;
const appDir = env.COCAINE_CONFORMANCE_APP;
if (!plugin || !appDir) throw new Error('run this through: npm run conformance -- --plugin NAME --app DIR');
const isolate = env.COCAINE_CONFORMANCE_ISOLATE || 'process';
const sessions = env.COCAINE_CONFORMANCE_SESSIONS;

describeConformance({
  plugin,
  appDir,
  pluginsDir: env.COCAINE_CONFORMANCE_PLUGINS_DIR || undefined,
  isolate: { type: isolate, args: env.COCAINE_CONFORMANCE_IMAGE ? { image: env.COCAINE_CONFORMANCE_IMAGE } : {} },
  engineArgs: env.COCAINE_CONFORMANCE_DOCKER_SOCKET ? ['--docker-socket', env.COCAINE_CONFORMANCE_DOCKER_SOCKET] : [],
  sessions: sessions === 'serial' || sessions === 'parallel' ? sessions : undefined,
  keepGoing: env.COCAINE_CONFORMANCE_KEEP_GOING === '1',
  slow: Number(env.COCAINE_CONFORMANCE_SLOW) || (isolate === 'docker' ? 2 : 1),
});
