/**
 * The kit catches each defect of a runtime that is wrong in exactly one way: the faulty test
 * runtime (test/fixtures/faulty-runtimes) with one FAULTY_RUNTIME_DEFECT fails exactly the check
 * for that defect, stops at that check's group, and the correct variant passes everything (but the
 * services group, which a protocol 1 runtime skips).
 */
import { appendFileSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../helpers/engine.js';
import { allChecks, runKit, type CheckResult } from './kit.js';

const FIXTURE = join(ROOT, 'test/fixtures/faulty-runtimes');

/** A copy of the fixture app whose manifest switches on one defect. */
function appWith(defect: string): string {
  const dir = tempDir('faulty-app');
  cpSync(join(FIXTURE, 'app'), dir, { recursive: true });
  if (defect) appendFileSync(join(dir, 'manifest.yaml'), `environment:\n  FAULTY_RUNTIME_DEFECT: ${defect}\n`);
  return dir;
}

function kit(defect: string): Promise<CheckResult[]> {
  return runKit({ plugin: 'faulty', appDir: appWith(defect), pluginsDir: join(FIXTURE, 'plugins') });
}

const summary = (results: CheckResult[]) => results.map((r) => `${r.status} [${r.group}] ${r.name}${r.message ? `: ${r.message}` : ''}`).join('\n');

/** Defect → the one check that must fail (a unique part of its name) and a part of its message. */
const DEFECTS: Record<string, { check: string; message: RegExp }> = {
  'bad-handshake': { check: 'sends a valid HANDSHAKE', message: /"worker" is .*expected COCAINE_WORKER_ID/ },
  'load-failure-continues': { check: 'exits 1 before its handshake', message: /HANDSHAKE although its entrypoint/ },
  'ignore-terminate': { check: 'after TERMINATE', message: /still running .* after TERMINATE/ },
  'ignore-eof': { check: 'closes the socket (EOF)', message: /still running .* after the socket closed/ },
  'unknown-event-code': { check: 'unknown event with ERROR not_found', message: /code "handler", expected "not_found".*UNKNOWN instead of NOT_FOUND/ },
  'unknown-control-frame': { check: 'unknown frame types on channel 0', message: /worker exited \(code 1.*unknown frame type/ },
  'no-heartbeat-in-handler': { check: 'keeps heartbeating while a handler runs', message: /no HEARTBEAT for \d+ ms/ },
  'ignore-cancel': { check: 'stops a cancelled handler', message: /did not see the cancellation/ },
  'oversize-frame': { check: 'larger than one frame (64 MiB)', message: /CHUNK frame of 67112963 bytes .*over the 64 MiB frame limit/ },
  'slow-consumer': { check: 'slow engine (backpressure)', message: /worker exited \(code 1.*reads too slowly/ },
  'drop-headers': { check: 'cocaine-event-id and cocaine-attempt', message: /headers of a blocking call/ },
};

describe('the conformance kit against a faulty runtime', () => {
  it('passes the correct variant of the test runtime on every check; its services group (protocol 1) is skipped, not failed', async () => {
    const results = await kit('');
    const services = results.filter((result) => result.group === 'services');
    expect(results.filter((result) => result.status !== 'pass' && result.group !== 'services'), summary(results)).toEqual([]);
    expect(services.length).toBeGreaterThan(0);
    for (const result of services) expect(result, summary(results)).toMatchObject({ status: 'skip', message: 'protocol 1: services not offered' });
    expect(results.length).toBe(allChecks.length);
  }, 240_000);

  for (const [defect, expected] of Object.entries(DEFECTS)) {
    it(`fails exactly "${expected.check}" for ${defect}, and stops at its group`, async () => {
      const started = Date.now();
      const results = await kit(defect);
      const ms = Date.now() - started;
      const failed = results.filter((result) => result.status === 'fail');
      expect(failed.map((result) => result.name), summary(results)).toEqual([expect.stringContaining(expected.check)]);
      expect(failed[0].message).toMatch(expected.message);
      const group = failed[0].group;
      const index = results.indexOf(failed[0]);
      const firstOfGroup = results.findIndex((result) => result.group === group);
      // Everything before the failing group passed; the rest of its group ran; later groups were skipped.
      expect(results.slice(0, firstOfGroup).every((result) => result.status === 'pass'), summary(results)).toBe(true);
      for (const result of results.slice(index + 1)) {
        expect(result.status, `${result.name}`).toBe(result.group === group && group !== 'handshake' ? 'pass' : 'skip');
      }
      console.log(`${defect}: caught by "${failed[0].name}" in ${ms} ms`);
    }, 180_000);
  }
});
