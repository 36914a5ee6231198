/**
 * The services group catches each way a handler's services can be wrong: a copy of the Node
 * conformance app with one defect fails exactly the check for it (the rest of the group passes),
 * with a message that says what is wrong.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXAMPLES, tempDir } from '../helpers/engine.js';
import { servicesChecks } from './checks-services.js';
import { runKit, type CheckResult } from './kit.js';

/**
 * Defect → the code it replaces and its replacement, the check that must fail, its message, and
 * any other check the same defect fails too.
 */
const DEFECTS: Record<string, { from: string; to: string; check: string; message: RegExp; also?: string }> = {
  'service errors lose their code': {
    from: 'new Error(`${error.code}: ${error.message}`)',
    to: 'new Error(error.message)',
    check: 'an error (unknown app) reaches the handler',
    also: 'compare-and-set',
    message: /should carry the service's code "app_not_found"/,
  },
  'emit ignores the id': {
    from: "id === '-' ? {} : { id }",
    to: '{}',
    check: 'emit: queues an event',
    message: /expected '.*' to be 'conformance-/,
  },
  'list ignores the cursor': {
    from: "...(rest[1] === undefined ? {} : { after: rest[1] })",
    to: '',
    check: 'storage: put, get, list',
    message: /the second \(last\) page/,
  },
  'put ignores the revision': {
    from: "rest[1] === undefined ? {} : { revision: Number(rest[1]) }",
    to: '{}',
    check: 'compare-and-set',
    message: /put with revision 0 on an existing key/,
  },
  'no log record': {
    from: "request.log[level](message, { kit: 'conformance' });",
    to: "console.log(level, message);",
    check: "log: a record appears in the app's logs",
    message: /both records in the app logs/,
  },
};

function appWith(from: string, to: string): string {
  const dir = tempDir('services-defect');
  cpSync(join(EXAMPLES, 'node-conformance'), dir, { recursive: true });
  const file = join(dir, 'index.js');
  const source = readFileSync(file, 'utf8');
  if (!source.includes(from)) throw new Error(`examples/node-conformance/index.js no longer contains ${from}`);
  writeFileSync(file, source.replace(from, to));
  return dir;
}

const summary = (results: CheckResult[]) => results.map((r) => `${r.status} ${r.name}${r.message ? `: ${r.message}` : ''}`).join('\n');

describe('the services group against a Node app with one defect', () => {
  for (const [defect, expected] of Object.entries(DEFECTS)) {
    it(`fails exactly "${expected.check}" when ${defect}`, async () => {
      const results = await runKit({ plugin: 'node', appDir: appWith(expected.from, expected.to) }, servicesChecks);
      const failed = results.filter((result) => result.status === 'fail');
      const names = [expected.check, ...(expected.also ? [expected.also] : [])];
      expect(failed.map((result) => result.name), summary(results)).toEqual(names.map((name) => expect.stringContaining(name)));
      expect(failed[0].message).toMatch(expected.message);
      expect(results.filter((result) => result.status === 'skip'), summary(results)).toEqual([]);
    }, 120_000);
  }
});
