import { Command } from 'commander';
import type { NodeInfoMessage } from '../engine/api/messages.js';
import { globalsOf, withClient } from './context.js';
import { formatTime, output, printFields, printTable } from './output.js';

function nodeJson(node: NodeInfoMessage) {
  return { ...node, seenAt: formatTime(node.seenAtMs), apps: node.apps.map((app) => ({ ...app, error: app.error || undefined })) };
}

function printNode(node: NodeInfoMessage): void {
  printFields([
    ['node', node.nodeId],
    ['version', node.version],
    ['uptime', `${Math.round(node.uptimeMs / 1000)} s`],
    ['listen', node.listen],
    ['storage', node.storage],
    ['queue', node.queue],
    ['isolate', node.isolate],
    ['plugins', node.plugins.map((plugin) => `${plugin.name} ${plugin.version} (${plugin.source})`).join(', ')],
  ]);
  if (node.apps.length > 0) {
    process.stdout.write('\n');
    printTable(
      ['APP', 'STATE', 'PROFILE', 'POOL', 'BUSY', 'IDLE', 'PENDING', 'QUEUED', 'DONE', 'FAILED', 'CRASHES', 'ERROR'],
      node.apps.map((app) => [
        app.name,
        app.state,
        app.profile,
        app.poolSize,
        app.busy,
        app.idle,
        app.pending,
        app.queuedEvents,
        app.counters?.completed ?? 0,
        app.counters?.failed ?? 0,
        app.counters?.crashes ?? 0,
        app.error,
      ]),
    );
  }
}

export function infoCommand(): Command {
  return new Command('info')
    .description('engine, pools, workers and counters; --cluster gathers every node')
    .option('--cluster', "every live node's view")
    .action(async (flags: { cluster?: boolean }, command: Command) => {
      const info = await withClient(command, (client) => client.info({ cluster: flags.cluster === true }));
      const json = { node: info.node ? nodeJson(info.node) : undefined, cluster: info.cluster.map(nodeJson) };
      output(globalsOf(command), json, () => {
        const nodes = flags.cluster && info.cluster.length > 0 ? info.cluster : info.node ? [info.node] : [];
        nodes.forEach((node, i) => {
          if (i > 0) process.stdout.write('\n');
          printNode(node);
        });
      });
    });
}
