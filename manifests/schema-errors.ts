import type { ErrorObject } from 'ajv';

/** One validation problem: the dotted field path and a sentence naming what was expected. */
export interface FieldProblem {
  field: string;
  message: string;
}

type SchemaLike = Record<string, unknown>;

/** `/isolate/args/memory` -> `isolate.args.memory` */
export function pointerToField(pointer: string): string {
  if (pointer === '') return '';
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
}

function join(parent: string, child: string): string {
  return parent === '' ? child : `${parent}.${child}`;
}

const TYPE_WORDS: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'a boolean',
  object: 'a map',
  array: 'a list',
  null: 'null',
};

/** What a schema expects, in words: `an integer >= 1`, `a number > 0`, `one of "a", "b"`. */
export function describeSchema(schema: SchemaLike | undefined): string {
  if (!schema) return 'a valid value';
  if (typeof schema['x-expected'] === 'string') return schema['x-expected'];
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  const types = Array.isArray(schema.type) ? (schema.type as string[]) : typeof schema.type === 'string' ? [schema.type] : [];
  let text = types.length > 0 ? types.map((t) => TYPE_WORDS[t] ?? t).join(' or ') : 'a value';
  const min = schema.minimum as number | undefined;
  const xmin = schema.exclusiveMinimum as number | undefined;
  const max = schema.maximum as number | undefined;
  if (min !== undefined && max !== undefined) text += ` between ${min} and ${max}`;
  else if (xmin !== undefined && max !== undefined) text += ` > ${xmin} and <= ${max}`;
  else if (min !== undefined) text += ` >= ${min}`;
  else if (xmin !== undefined) text += ` > ${xmin}`;
  else if (max !== undefined) text += ` <= ${max}`;
  if (schema.minLength === 1 && types.includes('string')) text = 'a non-empty string';
  if (typeof schema.maxLength === 'number' && types.includes('string')) text += ` of at most ${schema.maxLength} characters`;
  return text;
}

/** Short rendering of the offending value for messages. */
export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `a list`;
  if (typeof value === 'object') return 'a map';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j] as number;
      row[j] = Math.min(current + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = current;
    }
  }
  return row[b.length] as number;
}

/** The known key closest to a typo, if it is close enough to be a likely intent. */
export function suggestKey(typo: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const key of known) {
    const distance = editDistance(typo.toLowerCase(), key.toLowerCase());
    if (distance < bestDistance) {
      best = key;
      bestDistance = distance;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(typo.length / 3)) ? best : undefined;
}

/**
 * Turns ajv errors (compiled with allErrors + verbose) into one problem per field. When a field
 * failed an anyOf/oneOf, the branch errors are folded into the alternative's own expectation.
 */
export function describeAjvErrors(errors: ErrorObject[]): FieldProblem[] {
  const byField = new Map<string, { problem: FieldProblem; rank: number }>();
  const add = (key: string, problem: FieldProblem, rank: number) => {
    const existing = byField.get(key);
    if (!existing || rank > existing.rank) byField.set(key, { problem, rank });
  };
  // Branch errors inside a failed anyOf/oneOf are noise once the alternative itself is reported.
  const alternatives = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => e.schemaPath + '/');

  for (const error of errors) {
    const path = pointerToField(error.instancePath);
    const parent = error.parentSchema as SchemaLike | undefined;
    if (alternatives.some((prefix) => error.schemaPath.startsWith(prefix))) continue;
    switch (error.keyword) {
      case 'additionalProperties': {
        const key = String((error.params as { additionalProperty: string }).additionalProperty);
        const field = join(path, key);
        const known = Object.keys((parent?.properties as SchemaLike | undefined) ?? {});
        const suggestion = suggestKey(key, known);
        const expected = known.length > 0 ? `; known fields: ${known.join(', ')}` : '';
        const hint = suggestion ? ` (did you mean "${join(path, suggestion)}"?)` : expected;
        add(`unknown:${field}`, { field, message: `unknown field "${field}"${hint}` }, 3);
        break;
      }
      case 'required': {
        const key = String((error.params as { missingProperty: string }).missingProperty);
        const field = join(path, key);
        const propertySchema = (parent?.properties as Record<string, SchemaLike> | undefined)?.[key];
        add(field, { field, message: `field "${field}" is required: expected ${describeSchema(propertySchema)}` }, 3);
        break;
      }
      case 'propertyNames': {
        const key = String((error.params as { propertyName: string }).propertyName);
        const field = join(path, key);
        const expected = typeof parent?.['x-key-expected'] === 'string' ? parent['x-key-expected'] : 'a valid key';
        add(`key:${field}`, { field, message: `field "${path}" has an invalid key ${JSON.stringify(key)}: expected ${expected}` }, 3);
        break;
      }
      default: {
        // propertyNames reports its own error with the key; its inner pattern error adds nothing.
        if (error.propertyName !== undefined) break;
        const rank = error.keyword === 'anyOf' || error.keyword === 'oneOf' ? 2 : error.keyword === 'type' ? 1 : 0;
        const label = path === '' ? 'the document' : `field "${path}"`;
        add(path, { field: path, message: `${label} must be ${describeSchema(parent)} (got ${showValue(error.data)})` }, rank);
      }
    }
  }
  return [...byField.values()].map((entry) => entry.problem);
}
