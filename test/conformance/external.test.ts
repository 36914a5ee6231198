/**
 * The kit run against a plugin outside this repository:
 *   npm run conformance -- --plugin NAME --app DIR [--plugins-dir DIR] [--isolate TYPE] [--serial]
 * scripts/conformance.mjs sets these variables; vitest.config.ts includes this file only then.
 */
import { describeConformance } from './kit.js';

const plugin = process.env.COCAINE_CONFORMANCE_PLUGIN;
const appDir = process.env.COCAINE_CONFORMANCE_APP;
if (!plugin || !appDir) throw new Error('run this through: npm run conformance -- --plugin NAME --app DIR');

describeConformance({
  plugin,
  appDir,
  pluginsDir: process.env.COCAINE_CONFORMANCE_PLUGINS_DIR || undefined,
  isolate: { type: process.env.COCAINE_CONFORMANCE_ISOLATE || 'process' },
  sessions: process.env.COCAINE_CONFORMANCE_SESSIONS === 'serial' ? 'serial' : 'parallel',
});
