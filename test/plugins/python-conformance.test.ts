import { join } from 'node:path';
import { EXAMPLES } from '../helpers/engine.js';
import { describeConformance } from '../conformance/kit.js';

describeConformance({ plugin: 'python', appDir: join(EXAMPLES, 'python-conformance'), sessions: 'parallel' });
