import { join } from 'node:path';
import { EXAMPLES } from '../helpers/engine.js';
import { describeConformance } from './kit.js';

describeConformance({ plugin: 'perl', appDir: join(EXAMPLES, 'perl-conformance'), sessions: 'serial' });
