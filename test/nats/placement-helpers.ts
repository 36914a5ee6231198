import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** An app whose `whoami` answers the node that ran it (the `cocaine-node` header routed calls carry). */
export function writeWhoamiApp(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'whoami', version: '1.0.0', type: 'module' }));
  writeFileSync(
    join(dir, 'index.js'),
    [
      "export function whoami(request) { return request.headers['cocaine-node'] ?? 'no node header'; }",
      "export async function echo(request) { const body = await request.body(); return `${request.headers['cocaine-node']}:${body.toString()}`; }",
      "export function depth(request) { return `${request.headers['cocaine-node']}:${request.headers['cocaine-call-depth'] ?? 'none'}`; }",
      'export async function slow() { await new Promise((resolve) => setTimeout(resolve, 120_000)); return "late"; }',
      "export function fail(request) { throw new Error(`failed on ${request.headers['cocaine-node']}`); }",
      "export async function route(request) { return request.call('whoami@whoami', '', { routingKey: await request.text() }).text(); }",
      "export async function everyone(request) { return request.call('whoami@whoami', '', { broadcast: true }).text(); }",
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'manifest.yaml'), 'name: whoami\nplugin: node\nentrypoint: index.js\n');
  return dir;
}
