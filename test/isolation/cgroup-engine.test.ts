import { execFileSync } from 'node:child_process';
import { describeIsolationThroughEngine } from './through-engine.js';

describeIsolationThroughEngine({
  type: 'cgroup',
  args: () => ({}),
  engineArgs: () => [],
  isolatesNetwork: false,
  async leftovers(nodeId) {
    const found = execFileSync('find', ['/sys/fs/cgroup', '-maxdepth', '8', '-type', 'd', '-name', nodeId], { encoding: 'utf8' });
    return found.split('\n').filter(Boolean);
  },
});
