import { join } from 'node:path';
import { EXAMPLES } from '../helpers/engine.js';
import { describeConformance } from './kit.js';

describeConformance({ plugin: 'node', appDir: join(EXAMPLES, 'node-conformance'), sessions: 'parallel' });
