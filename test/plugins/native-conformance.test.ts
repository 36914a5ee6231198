/** The conformance kit (test/conformance/kit.ts) through a real engine, with the native-echo app compiled by `cc`. */
import { join } from 'node:path';
import { EXAMPLES } from '../helpers/engine.js';
import { compileSharedObject } from '../helpers/cc.js';
import { describeConformance } from '../conformance/kit.js';

const appDir = join(EXAMPLES, 'native-echo');

describeConformance({
  plugin: 'native',
  appDir,
  sessions: 'serial',
  // Compiled into the example directory (git-ignored): the app's tarball must hold echo.so.
  prepare: () => compileSharedObject(join(appDir, 'echo.c'), join(appDir, 'echo.so')),
});
