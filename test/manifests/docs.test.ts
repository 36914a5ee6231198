import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import manifestSchema from '../../manifests/manifest.schema.json' with { type: 'json' };
import profileSchema from '../../manifests/profile.schema.json' with { type: 'json' };
import { MAX_DOCUMENT_BYTES } from '../../manifests/validate.js';
import { ROOT } from '../helpers/engine.js';

type Schema = Record<string, unknown>;

interface Field {
  path: string;
  schema: Schema;
  required: boolean;
}

/** Every field of a schema: properties, and `<NAME>` for the values of a free-keyed map. */
function fields(schema: Schema, prefix = '', keyName = '<NAME>'): Field[] {
  const out: Field[] = [];
  const required = new Set((schema.required as string[] | undefined) ?? []);
  for (const [name, child] of Object.entries((schema.properties as Record<string, Schema> | undefined) ?? {})) {
    const path = prefix ? `${prefix}.${name}` : name;
    out.push({ path, schema: child, required: required.has(name) });
    out.push(...fields(child, path, name === 'events' ? '<event>' : '<NAME>'));
  }
  const values = schema.additionalProperties;
  if (values && typeof values === 'object') {
    const path = `${prefix}.${keyName}`;
    out.push({ path, schema: values as Schema, required: false });
    out.push(...fields(values as Schema, path));
  }
  return out;
}

/** The table rows of docs/manifest.md under `## heading`, by field. */
function rows(heading: string): Map<string, { type: string; default: string; limit: string }> {
  const text = readFileSync(join(ROOT, 'docs/manifest.md'), 'utf8');
  const section = text.split(/^## /m).find((part) => part.startsWith(heading));
  expect(section, `docs/manifest.md has a "## ${heading}" section`).toBeDefined();
  const found = new Map<string, { type: string; default: string; limit: string }>();
  for (const line of section!.split('\n')) {
    const cells = line.split(' | ').map((cell) => cell.replace(/^\|\s*|\s*\|$/g, '').trim());
    const field = /^`([^`]+)`$/.exec(cells[0] ?? '')?.[1];
    if (field && cells.length >= 5) found.set(field, { type: cells[1]!, default: cells[2]!, limit: cells[3]! });
  }
  return found;
}

/** Numbers and names the limit cell must state. */
function limitTerms(schema: Schema): string[] {
  const terms: string[] = [];
  for (const key of ['minimum', 'exclusiveMinimum', 'maximum', 'maxLength', 'x-max-bytes', 'x-max-total-bytes']) {
    if (typeof schema[key] === 'number') terms.push(String(schema[key]));
  }
  if (Array.isArray(schema.enum)) terms.push(...schema.enum.map((value) => `\`${String(value)}\``));
  for (const branch of (schema.anyOf as Schema[] | undefined) ?? []) terms.push(...limitTerms(branch));
  return terms;
}

/** What the default cell must state: every scalar of the schema's default. */
function defaultTerms(value: unknown): string[] {
  if (value === null || typeof value !== 'object') return [String(value)];
  const entries = Object.values(value as object);
  return entries.length === 0 ? ['{}'] : entries.flatMap(defaultTerms);
}

describe.each([
  ['Manifest', manifestSchema as Schema],
  ['Profile', profileSchema as Schema],
])('docs/manifest.md, %s', (heading, schema) => {
  const documented = rows(heading);
  const all = fields(schema);

  it.each(all.map((field) => [field.path, field] as const))('documents %s with its default and limit', (_path, field) => {
    const row = documented.get(field.path);
    expect(row, `a row for \`${field.path}\``).toBeDefined();
    if (field.required) expect(row!.default).toBe('required');
    else if (field.schema.default !== undefined) for (const term of defaultTerms(field.schema.default)) expect(row!.default).toContain(term);
    else expect(row!.default).not.toBe('');
    for (const term of limitTerms(field.schema)) expect(row!.limit, `limit of ${field.path}`).toContain(term);
    expect(row!.limit).not.toBe('');
  });

  it('documents no field the schema does not have', () => {
    expect([...documented.keys()].sort()).toEqual(all.map((field) => field.path).sort());
  });

  it('states the document size bound', () => {
    expect(readFileSync(join(ROOT, 'docs/manifest.md'), 'utf8')).toContain(String(MAX_DOCUMENT_BYTES));
  });
});
