import { describe, expect, it } from 'vitest';
import { ISOLATE_TYPES } from '../../engine/isolate/registry.js';
import { resolveLimits } from '../../engine/isolate/limits.js';
import {
  MAX_DOCUMENT_BYTES,
  MAX_ENV_TOTAL_BYTES,
  MAX_ENV_VALUE_BYTES,
  MIN_MEMORY_BYTES,
  parseManifest,
  parseProfile,
  resolveManifest,
  resolveProfile,
} from '../../manifests/validate.js';
import profileSchema from '../../manifests/profile.schema.json' with { type: 'json' };
import { refusal } from './refusal.js';

const YEAR_S = 365 * 24 * 3600;
const DURATIONS = ['startup-timeout', 'heartbeat-timeout', 'idle-timeout', 'termination-timeout', 'request-timeout'] as const;
const manifest = { name: 'a', plugin: 'node', entrypoint: 'a.js' };

describe('durations have a maximum', () => {
  it.each(DURATIONS)('%s: 365 days is accepted, more is refused naming the field', (field) => {
    expect(resolveProfile({ [field]: YEAR_S }, 'p.yaml')[field]).toBe(YEAR_S);
    for (const tooLong of [YEAR_S + 1, 1e10]) {
      const error = refusal(() => resolveProfile({ [field]: tooLong }, 'p.yaml'));
      expect(error.code).toBe('invalid_profile');
      expect(error.field).toBe(field);
      expect(error.message).toContain(`p.yaml: field "${field}" must be a number`);
      expect(error.message).toMatch(new RegExp(`(<=|between 0 and) ${YEAR_S} \\(got ${tooLong}\\)$`));
    }
  });

  it('a per-event timeout has the same maximum', () => {
    expect(resolveManifest({ ...manifest, events: { e: { timeout: YEAR_S } } }, 'm.yaml').events?.e?.timeout).toBe(YEAR_S);
    const error = refusal(() => resolveManifest({ ...manifest, events: { e: { timeout: 1e10 } } }, 'm.yaml'));
    expect(error.code).toBe('invalid_manifest');
    expect(error.field).toBe('events.e.timeout');
  });

  it('crashlog-limit is bounded', () => {
    expect(resolveProfile({ 'crashlog-limit': 10_000 }, 'p')['crashlog-limit']).toBe(10_000);
    expect(refusal(() => resolveProfile({ 'crashlog-limit': 1e9 }, 'p')).field).toBe('crashlog-limit');
  });
});

describe('YAML alias bombs and huge documents', () => {
  const bomb = [
    'a: &a ["x","x","x","x","x","x","x","x","x"]',
    'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
    'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
    'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
    'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
  ].join('\n');

  it('refuses an alias bomb in a manifest as invalid_manifest naming the file', () => {
    const error = refusal(() => parseManifest(`name: a\nplugin: node\nentrypoint: a.js\n${bomb}\n`, 'bomb/manifest.yaml'));
    expect(error.code).toBe('invalid_manifest');
    expect(error.message).toMatch(/^bomb\/manifest\.yaml: invalid YAML: .*alias/);
  });

  it('refuses an alias bomb in a profile as invalid_profile naming the file', () => {
    const error = refusal(() => parseProfile(`${bomb}\n`, 'bomb.yaml'));
    expect(error.code).toBe('invalid_profile');
    expect(error.message).toMatch(/^bomb\.yaml: invalid YAML: .*alias/);
  });

  it('still accepts ordinary aliases', () => {
    const profile = parseProfile('startup-timeout: &t 20\nheartbeat-timeout: *t\n', 'p.yaml');
    expect(profile['heartbeat-timeout']).toBe(20);
    const env = parseManifest('name: a\nplugin: node\nentrypoint: a.js\nenvironment: {A: &v hello, B: *v}\n', 'm.yaml').environment;
    expect(env).toEqual({ A: 'hello', B: 'hello' });
  });

  it('refuses a document larger than the bound before parsing it', () => {
    const big = `name: a\nplugin: node\nentrypoint: a.js\ndescription: "${'x'.repeat(MAX_DOCUMENT_BYTES)}"\n`;
    const error = refusal(() => parseManifest(big, 'big.yaml'));
    expect(error.code).toBe('invalid_manifest');
    expect(error.message).toContain(`big.yaml: the document is ${Buffer.byteLength(big)} bytes, more than the ${MAX_DOCUMENT_BYTES} allowed`);
  });
});

describe('what used to fail only at spawn is refused at upload', () => {
  it('an unknown isolate type, naming the known ones', () => {
    const error = refusal(() => parseProfile('isolate: firecracker\n', 'p.yaml'));
    expect(error.code).toBe('invalid_profile');
    expect(error.field).toBe('isolate.type');
    expect(error.message).toBe('p.yaml: field "isolate.type" must be one of "process", "cgroup", "docker" (got "firecracker")');
  });

  it('the schema knows exactly the isolates the registry creates', () => {
    expect(profileSchema.properties.isolate.properties.type.enum).toEqual([...ISOLATE_TYPES]);
  });

  it.each([1, 4 * 1024 * 1024 - 1, '1M', '3.9M', '100k'])('memory %j (below 4M)', (memory) => {
    const error = refusal(() => resolveProfile({ isolate: { type: 'cgroup', args: { memory } } }, 'p.yaml'));
    expect(error.field).toBe('isolate.args.memory');
    expect(error.message).toContain('p.yaml: field "isolate.args.memory" must be a byte count (integer >= 4194304) or a size of at least "4M"');
  });

  it('memory at the minimum is accepted, and the isolates use the same minimum', () => {
    expect(MIN_MEMORY_BYTES).toBe(4 * 1024 * 1024);
    expect(resolveProfile({ isolate: { args: { memory: '4M' } } }, 'p').isolate.args.memory).toBe(MIN_MEMORY_BYTES);
    expect(resolveLimits({ memory: MIN_MEMORY_BYTES }).memoryBytes).toBe(MIN_MEMORY_BYTES);
    expect(() => resolveLimits({ memory: MIN_MEMORY_BYTES - 1 })).toThrow(/isolate\.args\.memory/);
  });

  it('an environment value over 64 KiB (counted in UTF-8 bytes), naming the variable', () => {
    const mib = refusal(() => resolveManifest({ ...manifest, environment: { OK: 'x', BIG: 'x'.repeat(1024 * 1024) } }, 'm.yaml'));
    expect(mib.code).toBe('invalid_manifest');
    expect(mib.field).toBe('environment.BIG');
    expect(mib.message).toBe(`m.yaml: field "environment.BIG" must be at most ${MAX_ENV_VALUE_BYTES} bytes (got ${1024 * 1024} bytes)`);
    // 30000 characters, 90000 bytes.
    expect(refusal(() => resolveManifest({ ...manifest, environment: { WIDE: '€'.repeat(30_000) } }, 'm.yaml')).field).toBe('environment.WIDE');
    expect(resolveManifest({ ...manifest, environment: { FULL: 'x'.repeat(MAX_ENV_VALUE_BYTES) } }, 'm.yaml').environment.FULL).toHaveLength(MAX_ENV_VALUE_BYTES);
  });

  it('an environment over 512 KiB in all', () => {
    const environment: Record<string, string> = {};
    for (let i = 0; i < 9; i++) environment[`V${i}`] = 'x'.repeat(60_000);
    const error = refusal(() => resolveManifest({ ...manifest, environment }, 'm.yaml'));
    expect(error.field).toBe('environment');
    expect(error.message).toContain(`m.yaml: field "environment" must be at most ${MAX_ENV_TOTAL_BYTES} bytes in all`);
    delete environment.V8;
    expect(Object.keys(resolveManifest({ ...manifest, environment }, 'm.yaml').environment)).toHaveLength(8);
  });
});
