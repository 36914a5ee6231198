/**
 * The app's shared object, bound through koffi (plugins/native/include/cocaine/worker.h).
 *
 * Loaded and called on the app thread (app-thread.ts), never on the host's main thread: every
 * call is a plain synchronous koffi call there, so calls are serialised and always made from the
 * same thread, as the header promises, and the write callback runs on that thread too, where it
 * may block until the engine has read what came before (backpressure).
 */
import { resolve } from 'node:path';
import koffi, { type LibraryHandle } from 'koffi';

import { NATIVE_ABI_VERSION, WRITE_CANCELLED, WRITE_OK } from './app-protocol.js';

export { HANDLER_NOT_FOUND, HANDLER_OK, NATIVE_ABI_VERSION, WRITE_CANCELLED, WRITE_OK } from './app-protocol.js';

/** The largest single write() the host copies (one JS buffer); larger lengths are a bug in the app. */
const MAX_WRITE = 2 ** 32 - 1;

/** Size of the error buffer handed to cocaine_init and cocaine_handle. */
const ERROR_BUFFER_SIZE = 4096;

/**
 * Called on the app thread for each write(), while cocaine_handle runs; returns WRITE_OK or
 * WRITE_CANCELLED. `data` is a copy the callee owns; `misuse` says what is wrong with a write that
 * breaks the ABI's pointer/length rules (its data is undefined).
 */
export type WriteCallback = (ctx: number, data: Uint8Array | undefined, misuse?: string) => number;

export interface HandleResult {
  code: number;
  /** The message the app left in `error` (empty if none). */
  message: string;
}

export interface NativeApp {
  /** The entrypoint as the manifest names it. */
  readonly entrypoint: string;
  /** Runs cocaine_init if exported; returns the app's refusal message, or undefined. */
  init(app: string): string | undefined;
  /** cocaine_events() split, or undefined when not exported. */
  events(): string[] | undefined;
  /** headersJson: the headers as a JSON object; ctx: the invocation's channel, passed back to write. */
  handle(event: string, headersJson: string, body: Uint8Array, ctx: number): HandleResult;
  /** Runs cocaine_shutdown if exported. */
  shutdown(): void;
  /** Whether the app exports cocaine_bind (services, cocaine/worker.h). */
  readonly canBind: boolean;
  /** Calls cocaine_bind with the address of the host's cocaine_services table. */
  bind(table: bigint): void;
}

/** A broken app: the host prints the message and exits 1 before the handshake. */
export class NativeLoadError extends Error {}

// The app's own stack: a C handler may keep large arrays on it (koffi's default is 2 MiB).
koffi.config({ ...koffi.config(), sync_stack_size: 8 * 1024 * 1024 });

const WriteFn = koffi.proto('int cocaine_write_fn(void *ctx, const uint8_t *data, size_t len)');
koffi.struct('cocaine_request', {
  event: 'const char *',
  body: 'const uint8_t *',
  body_len: 'size_t',
  headers_json: 'const char *',
});

type SyncFn = (...args: unknown[]) => unknown;

function cString(buffer: Buffer): string {
  const end = buffer.indexOf(0);
  return buffer.toString('utf8', 0, end < 0 ? buffer.length : end);
}

/**
 * Loads the shared object (`entrypoint`, relative to the working directory), checks its ABI
 * version and required symbols. `write` receives every chunk the app writes, copied, on the main
 * thread.
 */
export function loadNativeApp(entrypoint: string, write: WriteCallback): NativeApp {
  let lib: LibraryHandle;
  try {
    // An absolute path: a bare name would make dlopen search the library path instead.
    lib = koffi.load(resolve(entrypoint));
  } catch (error) {
    throw new NativeLoadError(`cannot load the shared object ${entrypoint}: ${(error as Error).message}`);
  }
  const optional = (declaration: string): SyncFn | undefined => {
    try {
      return lib.func(declaration) as unknown as SyncFn;
    } catch {
      return undefined;
    }
  };
  const required = (name: string, declaration: string): SyncFn => {
    const fn = optional(declaration);
    if (!fn) {
      throw new NativeLoadError(
        `${entrypoint} does not export ${name}, which native ABI ${NATIVE_ABI_VERSION} requires (see cocaine/worker.h)`,
      );
    }
    return fn;
  };

  const abiVersion = required('cocaine_abi_version', 'int cocaine_abi_version(void)');
  const version = abiVersion() as number;
  if (version !== NATIVE_ABI_VERSION) {
    throw new NativeLoadError(
      `${entrypoint} was built for native ABI ${version}, but this host speaks ABI ${NATIVE_ABI_VERSION} ` +
        `(rebuild it against this engine's cocaine/worker.h)`,
    );
  }
  const handleFn = required(
    'cocaine_handle',
    'int cocaine_handle(const cocaine_request *req, cocaine_write_fn *write, void *ctx, uint8_t *error, size_t error_len)',
  );
  const initFn = optional('int cocaine_init(const char *app, uint8_t *error, size_t error_len)');
  const eventsFn = optional('const char *cocaine_events(void)');
  const shutdownFn = optional('void cocaine_shutdown(void)');
  const bindFn = optional('void cocaine_bind(void *services)');

  const writeCallback = koffi.register((ctx: bigint | null, data: bigint | null, len: number | bigint): number => {
    const channel = Number(ctx ?? 0);
    const length = Number(len);
    if (length === 0) return write(channel, undefined);
    if (data === null) return write(channel, undefined, `write(ctx, NULL, ${String(len)}): data is NULL but the length is not 0`);
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_WRITE) {
      // koffi may hand a size_t over as signed: show it as the app passed it.
      const asSizeT = BigInt.asUintN(64, typeof len === 'bigint' ? len : BigInt(Math.trunc(length)));
      return write(channel, undefined, `write(ctx, data, ${asSizeT}): a length above ${MAX_WRITE} bytes (a negative number passed as size_t?)`);
    }
    let chunk: Uint8Array;
    try {
      // A copy with a buffer of its own (transferable), not a view of the app's memory.
      chunk = new Uint8Array(length);
      chunk.set(new Uint8Array(koffi.view(data, length)));
    } catch (error) {
      return write(channel, undefined, `write(ctx, data, ${length}): cannot read the data: ${(error as Error).message}`);
    }
    return write(channel, chunk);
  }, koffi.pointer(WriteFn));

  return {
    entrypoint,
    init(app) {
      if (!initFn) return undefined;
      const error = Buffer.alloc(ERROR_BUFFER_SIZE);
      const code = initFn(app, error, error.length) as number;
      if (code === 0) return undefined;
      return cString(error) || `cocaine_init returned ${code}`;
    },
    events() {
      if (!eventsFn) return undefined;
      const list = eventsFn() as string | null;
      if (list === null) return undefined;
      return list
        .split(',')
        .map((name) => name.trim())
        .filter((name) => name !== '');
    },
    handle(event, headersJson, body, ctx) {
      const error = Buffer.alloc(ERROR_BUFFER_SIZE);
      // A zero-length body is still a valid pointer, as the header promises.
      const request = { event, body: body.length > 0 ? body : Buffer.alloc(1), body_len: body.length, headers_json: headersJson };
      const code = handleFn(request, writeCallback, BigInt(ctx), error, error.length) as number;
      return { code, message: cString(error) };
    },
    shutdown() {
      shutdownFn?.();
    },
    canBind: bindFn !== undefined,
    bind(table) {
      bindFn?.(table);
    },
  };
}
