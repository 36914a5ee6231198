/**
 * Every ErrorCode has a gRPC status in engine/api/status.ts and a row in docs/errors.md whose
 * status and CLI exit columns say what the code really maps to.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exitCodeFor } from '../../deploy-cli/errors.js';
import { STATUS_BY_CODE } from '../../engine/api/status.js';
import { ERROR_CODES, EngineError, type ErrorCode } from '../../engine/errors/index.js';
import { packageRoot } from '../../engine/util/paths.js';

/**
 * Codes added with docs/errors.md that deploy-cli/errors.ts does not map yet (it falls back to 6).
 * The owner of deploy-cli adds them to EXIT_BY_CODE with the documented exit, then removes them here
 * (the second test fails as a reminder once the CLI maps them).
 */
function catalogue(): Map<string, { status: string; exit: number }> {
  const text = readFileSync(join(packageRoot(), 'docs/errors.md'), 'utf8');
  const rows = new Map<string, { status: string; exit: number }>();
  for (const match of text.matchAll(/^\| `([a-z_]+)` \| ([A-Z_]+) \((\d+)\) \| (\d) \|/gm)) {
    expect(rows.has(match[1]), `duplicate row for ${match[1]}`).toBe(false);
    expect(GrpcStatus[match[2] as keyof typeof GrpcStatus], `${match[1]}: ${match[2]} is not status ${match[3]}`).toBe(Number(match[3]));
    rows.set(match[1], { status: match[2], exit: Number(match[4]) });
  }
  return rows;
}

describe('the error catalogue', () => {
  const rows = catalogue();

  it('has exactly one row per ErrorCode, with the gRPC status of status.ts', () => {
    expect([...rows.keys()].sort()).toEqual([...ERROR_CODES].sort());
    for (const code of ERROR_CODES) {
      expect(STATUS_BY_CODE[code], `${code} has no gRPC status`).toBeDefined();
      expect(rows.get(code)?.status, code).toBe(GrpcStatus[STATUS_BY_CODE[code]]);
    }
  });

  it("states each code's CLI exit as deploy-cli maps it", () => {
    for (const code of ERROR_CODES) {
      const actual = exitCodeFor(new EngineError(code, 'x'));
      expect(rows.get(code)?.exit, code).toBe(actual);
    }
  });

  it('an unknown event id is event_id_not_found, distinct from an app or event that does not exist', () => {
    expect(new Set(['app_not_found', 'event_not_found', 'event_id_not_found'].map((code) => rows.get(code)?.status))).toEqual(new Set(['NOT_FOUND']));
  });
});
