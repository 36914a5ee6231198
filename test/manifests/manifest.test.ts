import { describe, expect, it } from 'vitest';
import { parseManifest, resolveManifest } from '../../manifests/validate.js';
import { refusal } from './refusal.js';

describe('parseManifest', () => {
  it('parses YAML with defaults applied', () => {
    const manifest = parseManifest('name: echo\nplugin: python\nentrypoint: app/main.py\n', 'manifest.yaml');
    expect(manifest).toEqual({ name: 'echo', plugin: 'python', entrypoint: 'app/main.py', environment: {} });
  });

  it('parses JSON, events and environment, turning scalars into strings', () => {
    const text = JSON.stringify({
      name: 'echo',
      plugin: 'node',
      entrypoint: './lib//index.js',
      environment: { MODE: 'fast', PORT: 8080, DEBUG: true },
      events: { ping: {}, slow: { timeout: 2.5 } },
      description: 'an echo app',
    });
    const manifest = parseManifest(Buffer.from(text), 'manifest.json');
    expect(manifest).toEqual({
      name: 'echo',
      plugin: 'node',
      entrypoint: 'lib/index.js',
      environment: { MODE: 'fast', PORT: '8080', DEBUG: 'true' },
      events: { ping: {}, slow: { timeout: 2.5 } },
      description: 'an echo app',
    });
  });

  it('accepts events declared without a body in YAML', () => {
    const manifest = parseManifest('name: a\nplugin: perl\nentrypoint: a.pl\nevents:\n  ping:\n  pong: {timeout: 3}\n', 'm.yaml');
    expect(manifest.events).toEqual({ ping: {}, pong: { timeout: 3 } });
  });

  it('lists every missing required field, naming the file', () => {
    const error = refusal(() => parseManifest('description: nothing else\n', 'apps/x/manifest.yaml'));
    expect(error.code).toBe('invalid_manifest');
    const lines = error.message.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^apps\/x\/manifest\.yaml: field "name" is required/);
    expect(error.message).toContain('field "plugin" is required');
    expect(error.message).toContain('field "entrypoint" is required');
    expect(error.field).toBe('name');
  });

  it('refuses unknown top-level fields and suggests the intended one', () => {
    const error = refusal(() => parseManifest('name: a\nplugin: node\nentrypoint: a.js\nenviroment: {A: b}\n', 'manifest.yaml'));
    expect(error.code).toBe('invalid_manifest');
    expect(error.field).toBe('enviroment');
    expect(error.message).toBe('manifest.yaml: unknown field "enviroment" (did you mean "environment"?)');
  });

  it.each([
    ['/etc/passwd', 'absolute path'],
    ['../outside.js', "'..' segment"],
    ['lib/../../x.js', "'..' segment"],
    ['.', 'no file name'],
    ['lib\\main.js', 'backslash'],
  ])('refuses entrypoint %j', (entrypoint, why) => {
    const error = refusal(() => resolveManifest({ name: 'a', plugin: 'node', entrypoint }, 'manifest.json'));
    expect(error.code).toBe('invalid_manifest');
    expect(error.field).toBe('entrypoint');
    expect(error.message).toContain('manifest.json: field "entrypoint" must be a relative path');
    expect(error.message).toContain(why);
  });

  it('names nested fields and bad keys', () => {
    const text = 'name: a\nplugin: node\nentrypoint: a.js\nenvironment: {1A: b, LIST: [1]}\nevents: {"bad name": {}, pong: {timeout: 0, retries: 2}}\n';
    const error = refusal(() => parseManifest(text, 'm.yaml'));
    const lines = error.message.split('\n');
    expect(lines).toContain('m.yaml: field "environment.LIST" must be a string (got a list)');
    expect(lines).toContain('m.yaml: field "events.pong.timeout" must be a number > 0 and <= 31536000 (got 0)');
    expect(lines.some((line) => line.startsWith('m.yaml: field "environment" has an invalid key "1A"'))).toBe(true);
    expect(lines.some((line) => line.startsWith('m.yaml: field "events" has an invalid key "bad name"'))).toBe(true);
    expect(lines.some((line) => line.startsWith('m.yaml: unknown field "events.pong.retries"'))).toBe(true);
    expect(lines).toHaveLength(5);
  });

  it('refuses bad names and plugin names', () => {
    const error = refusal(() => resolveManifest({ name: '-x', plugin: '', entrypoint: 'a' }, 'm.json'));
    expect(error.message).toContain('field "name" must be a name of 1 to 64 letters');
    expect(error.message).toContain('(got "-x")');
    expect(error.message).toContain('field "plugin" must be a plugin name');
  });

  it('gives file:line:col for YAML syntax errors', () => {
    const error = refusal(() => parseManifest('name: a\nplugin: [node\nentrypoint: a.js\n', 'manifest.yaml'));
    expect(error.code).toBe('invalid_manifest');
    expect(error.message).toMatch(/^manifest\.yaml:\d+:\d+: syntax error: /);
  });

  it('refuses duplicate keys with their position', () => {
    const error = refusal(() => parseManifest('name: a\nname: b\nplugin: node\nentrypoint: a.js\n', 'manifest.yaml'));
    expect(error.message).toMatch(/^manifest\.yaml:2:1: syntax error: Map keys must be unique/);
  });

  it('refuses a document that is not a map', () => {
    expect(refusal(() => parseManifest('', 'm.yaml')).message).toBe('m.yaml: expected a manifest as a map of fields (got an empty document)');
    expect(refusal(() => parseManifest('- a\n- b\n', 'm.yaml')).message).toContain('(got a list)');
    expect(refusal(() => parseManifest('"just text"', 'm.json')).message).toContain('(got "just text")');
  });

  it('does not modify the object it validates', () => {
    const input = { name: 'a', plugin: 'node', entrypoint: './a.js' };
    resolveManifest(input, 'm.json');
    expect(input).toEqual({ name: 'a', plugin: 'node', entrypoint: './a.js' });
  });
});
