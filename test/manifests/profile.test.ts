import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../engine/errors/index.js';
import { DEFAULT_PROFILE, parseByteSize, parseProfile, resolveProfile } from '../../manifests/validate.js';
import { refusal } from './refusal.js';

describe('profiles', () => {
  it('has Cocaine defaults, frozen', () => {
    expect(DEFAULT_PROFILE).toEqual({
      'pool-limit': 10,
      'queue-limit': 100,
      concurrency: 10,
      'grow-threshold': 5,
      'startup-timeout': 10,
      'heartbeat-timeout': 30,
      'idle-timeout': 600,
      'termination-timeout': 5,
      'request-timeout': 86400,
      'crashlog-limit': 50,
      'crash-limit': 5,
      isolate: { type: 'process', args: {} },
    });
    expect(Object.isFrozen(DEFAULT_PROFILE)).toBe(true);
    expect(Object.isFrozen(DEFAULT_PROFILE.isolate.args)).toBe(true);
  });

  it('fills every default for an empty profile (YAML, JSON, empty file)', () => {
    expect(parseProfile('{}', 'p.json')).toEqual(DEFAULT_PROFILE);
    expect(parseProfile('', 'p.yaml')).toEqual(DEFAULT_PROFILE);
    expect(resolveProfile({}, 'p')).toEqual(DEFAULT_PROFILE);
    const a = resolveProfile({}, 'p');
    const b = resolveProfile({}, 'p');
    a.isolate.args.x = 1;
    expect(b.isolate.args).toEqual({});
  });

  it('derives grow-threshold from queue-limit and pool-limit unless given', () => {
    expect(parseProfile('queue-limit: 400\npool-limit: 4\n', 'p.yaml')['grow-threshold']).toBe(50);
    expect(parseProfile('queue-limit: 3\npool-limit: 10\n', 'p.yaml')['grow-threshold']).toBe(1);
    expect(parseProfile('queue-limit: 45\npool-limit: 2\n', 'p.yaml')['grow-threshold']).toBe(11);
    expect(parseProfile('queue-limit: 400\ngrow-threshold: 7\n', 'p.yaml')['grow-threshold']).toBe(7);
  });

  it('accepts fractional timeouts and idle-timeout 0', () => {
    const profile = parseProfile('{"startup-timeout": 0.5, "idle-timeout": 0, "request-timeout": 1.25}', 'p.json');
    expect(profile['startup-timeout']).toBe(0.5);
    expect(profile['idle-timeout']).toBe(0);
    expect(profile['request-timeout']).toBe(1.25);
  });

  it('names the file and field with what was expected', () => {
    const error = refusal(() => parseProfile('pool-limit: 0\n', 'profile.yaml'));
    expect(error.code).toBe('invalid_profile');
    expect(error.field).toBe('pool-limit');
    expect(error.message).toBe('profile.yaml: field "pool-limit" must be an integer between 1 and 10000 (got 0)');
  });

  it('lists all errors, one per line', () => {
    const text = [
      'pool-limit: 2.5',
      'concurrency: 0',
      'queue-limit: "many"',
      'startup-timeout: 0',
      'heartbeat-timeout: -1',
      'idle-timeout: -1',
      'termination-timeout: 0',
      'crash-limit: 0',
      'pool-limt: 3',
    ].join('\n');
    const error = refusal(() => parseProfile(text, 'busy.yaml'));
    const lines = error.message.split('\n');
    expect(lines).toHaveLength(9);
    expect(lines.every((line) => line.startsWith('busy.yaml: '))).toBe(true);
    expect(lines).toContain('busy.yaml: field "pool-limit" must be an integer between 1 and 10000 (got 2.5)');
    expect(lines).toContain('busy.yaml: field "concurrency" must be an integer between 1 and 100000 (got 0)');
    expect(lines).toContain('busy.yaml: field "queue-limit" must be an integer between 1 and 1000000 (got "many")');
    expect(lines).toContain('busy.yaml: field "startup-timeout" must be a number > 0 and <= 31536000 (got 0)');
    expect(lines).toContain('busy.yaml: field "heartbeat-timeout" must be a number > 0 and <= 31536000 (got -1)');
    expect(lines).toContain('busy.yaml: field "idle-timeout" must be a number between 0 and 31536000 (got -1)');
    expect(lines).toContain('busy.yaml: field "termination-timeout" must be a number > 0 and <= 31536000 (got 0)');
    expect(lines).toContain('busy.yaml: field "crash-limit" must be an integer between 1 and 1000 (got 0)');
    expect(lines).toContain('busy.yaml: unknown field "pool-limt" (did you mean "pool-limit"?)');
  });

  it('validates isolate args and passes unknown ones through', () => {
    const profile = parseProfile(
      'isolate:\n  type: docker\n  args:\n    memory: 64M\n    cpus: 1.5\n    cpu-weight: 200\n    pids: 64\n    image: python:3-slim\n    network: none\n    cap-drop: [ALL]\n',
      'p.yaml',
    );
    expect(profile.isolate).toEqual({
      type: 'docker',
      args: { memory: 64 * 1024 * 1024, cpus: 1.5, 'cpu-weight': 200, pids: 64, image: 'python:3-slim', network: 'none', 'cap-drop': ['ALL'] },
    });
  });

  it('accepts the string shorthand and passes unknown isolate args through', () => {
    expect(resolveProfile({ isolate: { type: 'docker', args: { kernel: '/k' } } }, 'p').isolate).toEqual({ type: 'docker', args: { kernel: '/k' } });
    expect(parseProfile('isolate: cgroup\n', 'p.yaml').isolate).toEqual({ type: 'cgroup', args: {} });
    expect(resolveProfile({ isolate: { args: { pids: 5 } } }, 'p').isolate).toEqual({ type: 'process', args: { pids: 5 } });
  });

  it('refuses bad isolate args with their nested field path', () => {
    const error = refusal(() =>
      resolveProfile({ isolate: { type: 'cgroup', args: { memory: '64Q', cpus: 0, 'cpu-weight': 20000, pids: 0, image: '' }, extra: 1 } }, 'p.json'),
    );
    const lines = error.message.split('\n');
    expect(lines).toContain('p.json: field "isolate.args.memory" must be a byte count (integer >= 4194304) or a size of at least "4M" such as "64M" or "1G" (got "64Q")');
    expect(lines).toContain('p.json: field "isolate.args.cpus" must be a number between 0.01 and 4096 (got 0)');
    expect(lines).toContain('p.json: field "isolate.args.cpu-weight" must be an integer between 1 and 10000 (got 20000)');
    expect(lines).toContain('p.json: field "isolate.args.pids" must be an integer between 1 and 4194304 (got 0)');
    expect(lines).toContain('p.json: field "isolate.args.image" must be a non-empty string of at most 4096 characters (got "")');
    expect(lines.some((line) => line.startsWith('p.json: unknown field "isolate.extra"'))).toBe(true);
    expect(refusal(() => resolveProfile({ isolate: { args: { memory: '0M' } } }, 'p.json')).field).toBe('isolate.args.memory');
    // A size that only fails once parsed is reported together with the other problems.
    const both = refusal(() => resolveProfile({ 'pool-limit': 0, isolate: { args: { memory: '0M' } } }, 'p.json'));
    expect(both.message.split('\n')).toHaveLength(2);
    expect(both.message).toContain('field "isolate.args.memory"');
  });

  it('gives file:line:col for YAML syntax errors', () => {
    const error = refusal(() => parseProfile('pool-limit: 3\nisolate: {type: docker\n', 'profile.yaml'));
    expect(error.code).toBe('invalid_profile');
    expect(error.message).toMatch(/^profile\.yaml:\d+:\d+: syntax error: /);
  });

  it('refuses a profile that is not a map', () => {
    expect(refusal(() => resolveProfile([1], 'p')).message).toBe('p: expected a profile as a map of fields (got a list)');
    expect(refusal(() => parseProfile('42', 'p.yaml')).code).toBe('invalid_profile');
  });
});

describe('parseByteSize', () => {
  it.each([
    ['64M', 64 * 1024 ** 2],
    ['1G', 1024 ** 3],
    ['1gb', 1024 ** 3],
    ['512KiB', 512 * 1024],
    ['1.5G', 1.5 * 1024 ** 3],
    ['100', 100],
    ['10b', 10],
    [4096, 4096],
  ])('%j = %d bytes', (text, bytes) => {
    expect(parseByteSize(text)).toBe(bytes);
  });

  it.each(['', '64Q', '-1M', 'M', '0', 0, 1.5])('refuses %j', (text) => {
    expect(() => parseByteSize(text)).toThrow(InvalidInputError);
  });
});
