/**
 * The `cocaine_services` table handed to the app's cocaine_bind (cocaine/worker.h, "Services"):
 * koffi callbacks, run on the app thread, that turn the C arguments into service requests
 * (docs/worker-protocol.md, "Services (version 2)"), block until the answer through `transport`,
 * and write the answer into the app's out-parameters and host-owned buffers.
 */
import koffi from 'koffi';

/** What a service request came to, as the transport (app-thread.ts) reports it. */
export type ServiceOutcome = { body: Uint8Array } | { error: { code: string; message: string } } | { cancelled: true };

export interface ServiceTransport {
  /**
   * The parent (engine channel of the running invocation) for the app's `ctx`, or a message
   * saying why that ctx is wrong.
   */
  parentOf(ctx: number): number | string;
  /** Sends the request and blocks until its answer or the invocation's cancellation. */
  request(parent: number, service: string, args: Record<string, unknown>, body: Uint8Array): ServiceOutcome;
  log(parent: number, level: string, message: string, fields: Record<string, unknown> | undefined): void;
}

export interface ServiceTable {
  /** The table's address, for cocaine_bind. */
  readonly address: bigint;
  /** Frees the buffers the app has not freed (its entry point returned). */
  releaseBuffers(): void;
}

const CANCELLED = 1;
const ERROR = 2;
const OK = 0;
const ANY_REVISION = -1;
const LEVELS = new Set(['debug', 'info', 'warn', 'error']);

const Buffer_ = koffi.struct('cocaine_buffer', { data: 'uint8_t *', len: 'size_t' });
const Table = koffi.struct('cocaine_services', {
  size: 'size_t',
  call: 'void *',
  emit: 'void *',
  storage_get: 'void *',
  storage_put: 'void *',
  storage_delete: 'void *',
  storage_list: 'void *',
  log: 'void *',
  buffer_free: 'void *',
});

const protos = {
  call: koffi.proto(
    'int cocaine_call_fn(void *ctx, const char *target, const char *headers_json, void *body, size_t body_len, int64_t timeout_ms, void *result, void *error, size_t error_len)',
  ),
  emit: koffi.proto(
    'int cocaine_emit_fn(void *ctx, const char *target, const char *headers_json, void *body, size_t body_len, const char *id, int64_t delay_ms, void *id_out, size_t id_out_len, void *duplicate, void *error, size_t error_len)',
  ),
  storage_get: koffi.proto(
    'int cocaine_storage_get_fn(void *ctx, const char *key, void *value, void *revision, void *found, void *error, size_t error_len)',
  ),
  storage_put: koffi.proto(
    'int cocaine_storage_put_fn(void *ctx, const char *key, void *value, size_t value_len, int64_t revision, void *new_revision, void *error, size_t error_len)',
  ),
  storage_delete: koffi.proto(
    'int cocaine_storage_delete_fn(void *ctx, const char *key, int64_t revision, void *deleted, void *error, size_t error_len)',
  ),
  storage_list: koffi.proto(
    'int cocaine_storage_list_fn(void *ctx, const char *prefix, size_t limit, const char *after, void *keys, void *count, void *next, size_t next_len, void *error, size_t error_len)',
  ),
  log: koffi.proto('int cocaine_log_fn(void *ctx, const char *level, const char *message, const char *fields_json)'),
  buffer_free: koffi.proto('void cocaine_buffer_free_fn(void *buffer)'),
};

type Ptr = bigint | null;
type Int = number | bigint;

/** A failure to report as `code: message` with COCAINE_ERROR. */
class Refusal extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Writes `text` NUL-terminated into the app's buffer, truncated to `size` bytes with the NUL. */
function writeCString(pointer: Ptr, size: Int, text: string): void {
  const capacity = Number(size);
  if (pointer === null || !(capacity > 0)) return;
  const bytes = Buffer.from(text, 'utf8');
  const view = new Uint8Array(koffi.view(pointer, capacity));
  const length = Math.min(bytes.length, capacity - 1);
  view.set(bytes.subarray(0, length));
  view[length] = 0;
}

function readBytes(pointer: Ptr, length: Int, what: string): Uint8Array {
  const size = Number(length);
  if (size === 0) return new Uint8Array(0);
  if (pointer === null) throw new Refusal('invalid_argument', `${what} is NULL but its length is ${String(length)}`);
  if (!Number.isSafeInteger(size) || size < 0 || size > 2 ** 32 - 1) {
    throw new Refusal('invalid_argument', `${what}: a length of ${String(length)} bytes (a negative number passed as size_t?)`);
  }
  const copy = new Uint8Array(size);
  copy.set(new Uint8Array(koffi.view(pointer, size)));
  return copy;
}

function requireString(value: string | null, what: string): string {
  if (value === null || value === '') throw new Refusal('invalid_argument', `${what} is empty`);
  return value;
}

function parseObject(json: string | null, what: string): Record<string, unknown> | undefined {
  if (json === null || json === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    throw new Refusal('invalid_argument', `${what} is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Refusal('invalid_argument', `${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** The `target` and `headers` args that call and emit share. */
function targetArgs(target: string | null, headers: string | null): Record<string, unknown> {
  const args: Record<string, unknown> = { target: requireString(target, 'target') };
  const parsed = parseHeaders(headers);
  if (parsed) args.headers = parsed;
  return args;
}

function parseHeaders(json: string | null): Record<string, string> | undefined {
  const headers = parseObject(json, 'headers_json');
  if (!headers) return undefined;
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== 'string') throw new Refusal('invalid_argument', `headers_json: header '${name}' must be a string`);
  }
  return headers as Record<string, string>;
}

/** A millisecond count: 0 = none; negative is the app's mistake. */
function millisecondsArg(value: Int, what: string): number | undefined {
  const ms = Number(value);
  if (!Number.isSafeInteger(ms) || ms < 0) throw new Refusal('invalid_argument', `${what} must be >= 0, got ${String(value)}`);
  return ms > 0 ? ms : undefined;
}

function revisionArg(revision: Int): number | undefined {
  const value = Number(revision);
  if (value === ANY_REVISION) return undefined;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Refusal('invalid_argument', `revision must be COCAINE_ANY_REVISION (-1) or >= 0, got ${String(revision)}`);
  }
  return value;
}

function answerJson(body: Uint8Array): Record<string, unknown> {
  try {
    return JSON.parse(Buffer.from(body).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new Refusal('internal', `the engine's answer is not JSON: ${Buffer.from(body).toString('utf8').slice(0, 200)}`);
  }
}

/** Builds the table; callbacks stay registered for the life of the worker. */
export function createServiceTable(transport: ServiceTransport): ServiceTable {
  const buffers = new Set<bigint>();

  /** Copies `bytes` into a host-owned buffer (one NUL after them) and stores it in the app's cocaine_buffer. */
  const fill = (target: Ptr, bytes: Uint8Array, what: string): void => {
    if (target === null) throw new Refusal('invalid_argument', `${what} is NULL`);
    const pointer = koffi.alloc('uint8_t', bytes.length + 1) as bigint;
    const view = new Uint8Array(koffi.view(pointer, bytes.length + 1));
    view.set(bytes);
    view[bytes.length] = 0;
    buffers.add(pointer);
    koffi.encode(target, Buffer_, { data: pointer, len: bytes.length });
  };

  const free = (target: Ptr): void => {
    if (target === null) return;
    try {
      const { data } = koffi.decode(target, Buffer_) as { data: bigint | null };
      if (data === null || !buffers.delete(data)) return; // not ours (or freed already): left alone
      koffi.free(data);
      koffi.encode(target, Buffer_, { data: null, len: 0 });
    } catch (error) {
      // Nothing to report it through (void): the app's output says what went wrong.
      process.stderr.write(`cocaine native runtime: cocaine_buffer_free: ${(error as Error).message}\n`);
    }
  };

  /**
   * Runs one service callback: resolves ctx, sends the request, and maps the outcome; `use`
   * interprets a successful answer's body (writing the out-parameters).
   */
  const serve = (
    ctx: Ptr,
    error: Ptr,
    errorLen: Int,
    build: () => { service: string; args: Record<string, unknown>; body?: Uint8Array },
    use: (body: Uint8Array) => void,
  ): number => {
    try {
      const parent = transport.parentOf(Number(ctx ?? 0n));
      if (typeof parent === 'string') throw new Refusal('invalid_argument', parent);
      const { service, args, body } = build();
      const outcome = transport.request(parent, service, args, body ?? new Uint8Array(0));
      if ('cancelled' in outcome) return CANCELLED;
      if ('error' in outcome) {
        if (outcome.error.code === 'cancelled') return CANCELLED;
        throw new Refusal(outcome.error.code, outcome.error.message);
      }
      use(outcome.body);
      return OK;
    } catch (failure) {
      const code = failure instanceof Refusal ? failure.code : 'internal';
      writeCString(error, errorLen, `${code}: ${(failure as Error).message}`);
      return ERROR;
    }
  };

  const callbacks = {
    call: (ctx: Ptr, target: string | null, headers: string | null, body: Ptr, bodyLen: Int, timeoutMs: Int, result: Ptr, error: Ptr, errorLen: Int) =>
      serve(
        ctx,
        error,
        errorLen,
        () => {
          const args = targetArgs(target, headers);
          const timeout = millisecondsArg(timeoutMs, 'timeout_ms');
          if (timeout !== undefined) args.timeout_ms = timeout;
          if (result === null) throw new Refusal('invalid_argument', 'result is NULL');
          return { service: 'call', args, body: readBytes(body, bodyLen, 'body') };
        },
        (answer) => fill(result, answer, 'result'),
      ),
    emit: (
      ctx: Ptr, target: string | null, headers: string | null, body: Ptr, bodyLen: Int, id: string | null, delayMs: Int,
      idOut: Ptr, idOutLen: Int, duplicate: Ptr, error: Ptr, errorLen: Int,
    ) =>
      serve(
        ctx,
        error,
        errorLen,
        () => {
          const args = targetArgs(target, headers);
          const delay = millisecondsArg(delayMs, 'delay_ms');
          if (delay !== undefined) args.delay_ms = delay;
          if (id !== null && id !== '') args.id = id;
          return { service: 'emit', args, body: readBytes(body, bodyLen, 'body') };
        },
        (answer) => {
          const queued = answerJson(answer);
          writeCString(idOut, idOutLen, String(queued.id ?? ''));
          if (duplicate !== null) koffi.encode(duplicate, 'int', queued.duplicate === true ? 1 : 0);
        },
      ),
    storage_get: (ctx: Ptr, key: string | null, value: Ptr, revision: Ptr, found: Ptr, error: Ptr, errorLen: Int) =>
      serve(
        ctx,
        error,
        errorLen,
        () => {
          if (value === null) throw new Refusal('invalid_argument', 'value is NULL');
          return { service: 'storage', args: { method: 'get', key: requireString(key, 'key') } };
        },
        (answer) => {
          const got = answerJson(answer);
          const isFound = got.found === true;
          if (found !== null) koffi.encode(found, 'int', isFound ? 1 : 0);
          if (revision !== null) koffi.encode(revision, 'int64_t', isFound ? Number(got.revision ?? 0) : 0);
          if (isFound) fill(value, Buffer.from(String(got.value ?? ''), 'base64'), 'value');
          else if (value !== null) koffi.encode(value, Buffer_, { data: null, len: 0 });
        },
      ),
    storage_put: (ctx: Ptr, key: string | null, value: Ptr, valueLen: Int, revision: Int, newRevision: Ptr, error: Ptr, errorLen: Int) =>
      serve(
        ctx,
        error,
        errorLen,
        () => {
          const args: Record<string, unknown> = { method: 'put', key: requireString(key, 'key') };
          const condition = revisionArg(revision);
          if (condition !== undefined) args.revision = condition;
          return { service: 'storage', args, body: readBytes(value, valueLen, 'value') };
        },
        (answer) => {
          if (newRevision !== null) koffi.encode(newRevision, 'int64_t', Number(answerJson(answer).revision ?? 0));
        },
      ),
    storage_delete: (ctx: Ptr, key: string | null, revision: Int, deleted: Ptr, error: Ptr, errorLen: Int) =>
      serve(
        ctx,
        error,
        errorLen,
        () => {
          const args: Record<string, unknown> = { method: 'delete', key: requireString(key, 'key') };
          const condition = revisionArg(revision);
          if (condition !== undefined) args.revision = condition;
          return { service: 'storage', args };
        },
        (answer) => {
          if (deleted !== null) koffi.encode(deleted, 'int', answerJson(answer).deleted === true ? 1 : 0);
        },
      ),
    storage_list: (
      ctx: Ptr, prefix: string | null, limit: Int, after: string | null, keys: Ptr, count: Ptr, next: Ptr, nextLen: Int,
      error: Ptr, errorLen: Int,
    ) =>
      serve(
        ctx,
        error,
        errorLen,
        () => {
          const args: Record<string, unknown> = { method: 'list' };
          if (prefix) args.prefix = prefix;
          if (Number(limit) > 0) args.limit = Number(limit);
          if (after) args.after = after;
          if (keys === null) throw new Refusal('invalid_argument', 'keys is NULL');
          return { service: 'storage', args };
        },
        (answer) => {
          const page = answerJson(answer);
          const list = Array.isArray(page.keys) ? page.keys.map(String) : [];
          fill(keys, Buffer.from(list.map((key) => `${key}\0`).join(''), 'utf8'), 'keys');
          if (count !== null) koffi.encode(count, 'size_t', list.length);
          writeCString(next, nextLen, typeof page.next === 'string' ? page.next : '');
        },
      ),
    log: (ctx: Ptr, level: string | null, message: string | null, fieldsJson: string | null): number => {
      const resolved = transport.parentOf(Number(ctx ?? 0n));
      // Outside cocaine_handle the record still counts (parent 0: the app's output).
      const parent = typeof resolved === 'string' ? 0 : resolved;
      if (level === null || !LEVELS.has(level)) return ERROR;
      let fields: Record<string, unknown> | undefined;
      try {
        fields = parseObject(fieldsJson, 'fields_json');
      } catch {
        return ERROR;
      }
      transport.log(parent, level, message ?? '', fields);
      return OK;
    },
    buffer_free: (buffer: Ptr): void => free(buffer),
  };

  const pointers: Record<string, bigint> = {};
  for (const [name, proto] of Object.entries(protos)) {
    pointers[name] = koffi.register(callbacks[name as keyof typeof callbacks] as (...args: never[]) => unknown, koffi.pointer(proto));
  }
  const address = koffi.alloc(Table, 1) as bigint;
  koffi.encode(address, Table, { size: koffi.sizeof(Table), ...pointers });

  return {
    address,
    releaseBuffers() {
      for (const pointer of buffers) koffi.free(pointer);
      buffers.clear();
    },
  };
}
