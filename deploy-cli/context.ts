import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { connect, type EngineClient } from '../engine/api/client.js';
import { UsageError } from './errors.js';
import type { OutputOptions } from './output.js';

export const DEFAULT_ENGINE = '127.0.0.1:10053';
/** Deadline of admin rpcs when --timeout is not given. */
const DEFAULT_RPC_TIMEOUT_MS = 60_000;

export interface GlobalOptions extends OutputOptions {
  engine: string;
  /** --timeout in ms, undefined when not given. */
  timeout?: number;
}

export function globalsOf(command: Command): GlobalOptions {
  const all = command.optsWithGlobals() as { engine?: string; json?: boolean; timeout?: number };
  return { engine: all.engine ?? process.env.COCAINE_ENGINE ?? DEFAULT_ENGINE, json: all.json === true, timeout: all.timeout };
}

/** Runs `fn` with a client of the engine named by the global options, closing it afterwards. */
export async function withClient<T>(command: Command, fn: (client: EngineClient, globals: GlobalOptions) => Promise<T>): Promise<T> {
  const globals = globalsOf(command);
  const client = connect(globals.engine, { timeoutMs: globals.timeout ?? DEFAULT_RPC_TIMEOUT_MS });
  try {
    return await fn(client, globals);
  } finally {
    client.close();
  }
}

export function parseInteger(name: string, min = 0): (value: string) => number {
  return (value: string) => {
    const parsed = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed) || parsed < min) {
      throw new UsageError(`${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
    }
    return parsed;
  };
}

export function collectHeader(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new UsageError(`--header must be KEY=VALUE, got ${JSON.stringify(value)}`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** On a terminal, reading stdin looks like a hang: say what is expected (on stderr, never in the output). */
export function hintStdin(what: string, instead = '--data / --file'): void {
  if (process.stdin.isTTY) process.stderr.write(`reading ${what} from stdin; Ctrl-D to end (or give ${instead})\n`);
}

export async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The request body from --data, --file or stdin (in that order; at most one of the flags). */
export async function readBody(options: { data?: string; file?: string }): Promise<Buffer> {
  if (options.data !== undefined && options.file !== undefined) throw new UsageError('give either --data or --file, not both');
  if (options.data !== undefined) return Buffer.from(options.data);
  if (options.file !== undefined) {
    try {
      return await readFile(options.file);
    } catch (error) {
      throw new UsageError(`cannot read --file ${options.file}: ${(error as Error).message}`);
    }
  }
  hintStdin('the body');
  return readStdin();
}

/** Writes to stdout honouring backpressure (large binary results piped to a slow reader). */
export async function writeStdout(chunk: Buffer): Promise<void> {
  if (!process.stdout.write(chunk)) await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
}
