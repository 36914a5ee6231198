import { join } from 'node:path';
import { EXAMPLES } from '../helpers/engine.js';
import { compileSharedObject } from '../helpers/cc.js';
import { describeConformance } from './kit.js';
describeConformance({ plugin: 'node', appDir: join(EXAMPLES, 'node-conformance'), keepGoing: true });
describeConformance({ plugin: 'perl', appDir: join(EXAMPLES, 'perl-conformance'), keepGoing: true });
describeConformance({ plugin: 'python', appDir: join(EXAMPLES, 'python-conformance'), keepGoing: true });
describeConformance({ plugin: 'native', appDir: join(EXAMPLES, 'native-echo'), keepGoing: true,
  prepare: () => compileSharedObject(join(EXAMPLES, 'native-echo', 'echo.c'), join(EXAMPLES, 'native-echo', 'echo.so')) });
