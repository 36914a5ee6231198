#!/usr/bin/env node
// Runs the conformance kit against one plugin and its conformance app:
//   npm run conformance -- --plugin ruby --app path/to/ruby-conformance [--plugins-dir DIR] [--isolate process|docker]
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    plugin: { type: 'string' },
    app: { type: 'string' },
    'plugins-dir': { type: 'string' },
    isolate: { type: 'string', default: 'process' },
    serial: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help || !values.plugin || !values.app) {
  process.stderr.write('usage: npm run conformance -- --plugin NAME --app DIR [--plugins-dir DIR] [--isolate process|docker] [--serial]\n');
  process.exit(values.help ? 0 : 1);
}
const env = {
  ...process.env,
  COCAINE_CONFORMANCE_PLUGIN: values.plugin,
  COCAINE_CONFORMANCE_APP: resolve(values.app),
  COCAINE_CONFORMANCE_PLUGINS_DIR: values['plugins-dir'] ? resolve(values['plugins-dir']) : '',
  COCAINE_CONFORMANCE_ISOLATE: values.isolate,
  COCAINE_CONFORMANCE_SESSIONS: values.serial ? 'serial' : 'parallel',
};
const result = spawnSync('npx', ['vitest', 'run', 'test/conformance/external.test.ts'], { stdio: 'inherit', env });
process.exit(result.status ?? 1);
