/*
 * cocaine/worker.h — the C ABI of the cocaine-engine `native` plugin.
 *
 * A native app is a shared object (`.so`) that exports the functions below. The engine starts a
 * worker host (a small Node program shipped with the plugin) in the app's directory; the host
 * loads the shared object (on its app thread), speaks the worker protocol with the engine, and calls into the app.
 * The app never sees sockets or frames.
 *
 *   required  int          cocaine_abi_version(void);
 *   required  int          cocaine_handle(const cocaine_request *req, cocaine_write_fn write,
 *                                         void *ctx, char *error, size_t error_len);
 *   optional  int          cocaine_init(const char *app, char *error, size_t error_len);
 *   optional  const char  *cocaine_events(void);
 *   optional  void         cocaine_shutdown(void);
 *   optional  void         cocaine_bind(const cocaine_services *services);
 *                          (services, protocol 2: defined by this header unless
 *                          COCAINE_NO_DEFAULT_BIND; see "Services" below)
 *
 * Lifecycle
 *   1. The host loads the shared object and calls cocaine_abi_version(). A missing symbol or a
 *      version other than the host's COCAINE_NATIVE_ABI_VERSION stops the worker (exit status 1,
 *      the reason on stderr) before the handshake, so the engine reports a failed start.
 *      Then cocaine_bind(services), if exported and the engine speaks worker protocol 2, once.
 *   2. cocaine_init(app, error, error_len), if exported, once. Non-zero refuses to start: write
 *      the reason into `error` (NUL-terminated, at most error_len bytes including the NUL).
 *   3. cocaine_events(), if exported, once: a comma-separated list of event names ("echo,upper").
 *      The engine then answers other events with NOT_FOUND without calling the app. Without it,
 *      every event reaches cocaine_handle, which returns COCAINE_NOT_FOUND for unknown ones.
 *   4. cocaine_handle(...) once per invocation.
 *   5. cocaine_shutdown(), if exported, when the engine stops the worker gracefully (after the
 *      running call, if any, has returned). It is not called when the engine goes away abruptly
 *      or the process is killed.
 *
 * Threading
 *   All calls are serialised: one at a time, always on the same thread (the host's app thread,
 *   not its main thread, so the host keeps heartbeating while a handler runs for long).
 *   The worker declares concurrency 1, so the engine sends it one invocation at a time; run more
 *   workers (the profile's pool-limit) to serve calls in parallel. Global state persists across
 *   calls for the life of the worker process. `write` must be called from the thread that is
 *   running cocaine_handle, while it runs; never keep it or `ctx` after returning. Threads the app
 *   starts itself must not call `write`.
 *
 * Memory
 *   Everything the host passes (the request and the strings and body it points to, the error
 *   buffer) is owned by the host and valid only during the call: copy what you want to keep.
 *   `write` copies `data` before returning, so the app may reuse or free its buffer at once.
 *   The string returned by cocaine_events() must stay valid (a literal or static).
 *
 * Crashes
 *   The app runs inside the worker process: a crash (SIGSEGV, abort(), exit()) ends the worker.
 *   The engine fails the running call with UNAVAILABLE and the exit status or signal, keeps the
 *   worker's last output lines as a crashlog, and starts a new worker for the next call. A long
 *   handler does not stop the heartbeats (the host runs it on another thread), but one that ignores
 *   cancellation keeps its worker busy until it returns: poll write(ctx, NULL, 0).
 *
 * Output
 *   stdout and stderr are captured line by line into the app's logs. stdout is a pipe, so C stdio
 *   buffers it fully: call fflush(stdout), or setvbuf(stdout, NULL, _IOLBF, 0) in cocaine_init.
 *   Never write to file descriptors other than 1 and 2 that the app did not open itself.
 */
#ifndef COCAINE_WORKER_H
#define COCAINE_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes; cocaine_abi_version() returns it. */
#define COCAINE_NATIVE_ABI_VERSION 1

/* cocaine_handle() results. */
#define COCAINE_OK 0         /* success: the chunks written so far are the result */
#define COCAINE_NOT_FOUND 1  /* no handler for this event: the caller gets NOT_FOUND */
#define COCAINE_ERROR 2      /* (or any other value) failure: the caller gets `error` */

/* write() results. */
#define COCAINE_WRITE_OK 0
#define COCAINE_CANCELLED 1  /* the call was cancelled (caller gone, deadline): stop and return */

/*
 * Sends one chunk of the result to the caller, in order. The data is copied before it returns.
 * A zero-length write sends nothing and only reports whether the call was cancelled: handlers
 * that run for long poll it (`if (write(ctx, NULL, 0)) return COCAINE_ERROR;`).
 * Each write copies the chunk and hands it to the host's main thread (microseconds, as a rule),
 * so thousands of small writes cost more than a few large ones. A write larger than a protocol
 * frame (64 MiB) reaches the caller as several chunks. Backpressure: while more than 1 MiB the
 * app wrote has not yet been taken by the engine's socket, write blocks until it is (or the call
 * is cancelled), so a handler that writes faster than the engine reads is slowed down instead of
 * growing the worker's memory.
 * Once it returned COCAINE_CANCELLED, further writes are dropped; whatever cocaine_handle
 * returns then is ignored.
 * Misuse: data == NULL with len > 0, or a len no buffer can have (a negative int passed as
 * size_t), fails the call with a handler error saying so and returns COCAINE_CANCELLED.
 */
typedef int (*cocaine_write_fn)(void *ctx, const uint8_t *data, size_t len);

/* Returns COCAINE_NATIVE_ABI_VERSION as the app was compiled with. Required. */
int cocaine_abi_version(void);

/*
 * Optional. Called once before the worker announces itself to the engine. `app` is the app's
 * name. Return 0 to start; anything else refuses to start, with a message in `error`.
 */
int cocaine_init(const char *app, char *error, size_t error_len);

/* Optional. Comma-separated names of the events the app handles, e.g. "echo,upper". */
const char *cocaine_events(void);

/*
 * One invocation, as cocaine_handle() receives it.
 *   event         the event name (UTF-8, NUL-terminated).
 *   body          the whole request body: the host collects the streamed body until its end
 *                 before calling. Not NUL-terminated; body_len may be 0 (body is then still a
 *                 valid pointer, to nothing you may read).
 *   headers_json  the invocation's headers as a JSON object of strings, names lower-case,
 *                 e.g. {"x-trace":"abc"}; "{}" when there are none. NUL-terminated UTF-8.
 */
typedef struct {
  const char *event;
  const uint8_t *body;
  size_t body_len;
  const char *headers_json;
} cocaine_request;

/*
 * Handles one invocation. Required.
 *   req        the request (see cocaine_request); host-owned, valid until this returns.
 *   write, ctx send result chunks (see cocaine_write_fn); pass `ctx` back unchanged.
 *   error      buffer for the message of a failure, NUL-terminated, at most error_len bytes
 *              (zero-filled on entry; 4096 bytes).
 * Returns COCAINE_OK (0): success, the chunks written are the result;
 *         COCAINE_NOT_FOUND (1): no such event, the caller gets NOT_FOUND;
 *         COCAINE_ERROR (2, or any other value): failure, the caller gets `error` (or
 *         "handler returned <n>" when it is empty), after the chunks already written.
 */
int cocaine_handle(const cocaine_request *req, cocaine_write_fn write, void *ctx, char *error, size_t error_len);

/* Optional. Called once when the engine stops the worker gracefully. */
void cocaine_shutdown(void);

/*
 * ---------------------------------------------------------------------------------------------
 * Services: a handler asks the engine (worker protocol version 2)
 *
 * A handler may call another app's event, queue an event, use the app's key-value storage and
 * write structured log records. The host provides these as a table of function pointers, handed
 * to the app once through cocaine_bind(), before cocaine_init. This header defines a default
 * cocaine_bind (a weak symbol: define your own to override it) that keeps the table in
 * `cocaine_services_table`, and the static inline helpers below use that table, so a C app only
 * includes this header and calls them. Apps in other languages export cocaine_bind themselves
 * and call through the table.
 *
 * The ABI version stays 1: cocaine_bind is optional, a .so without it loads as before, and a
 * .so with it still loads on an older host (which never calls it; the helpers then fail with
 * "unavailable: ..."). The host does not bind when the engine speaks protocol 1 either.
 *
 * Every helper is synchronous: it blocks the calling (app) thread until the engine answers,
 * while the host's main thread keeps heartbeating. Call them only from the thread running
 * cocaine_handle, while it runs, with the `ctx` cocaine_handle received: the request belongs to
 * that invocation (its deadline, trace, call depth and cancellation). In cocaine_init and
 * cocaine_shutdown (no invocation; the worker has not announced itself yet in cocaine_init) they
 * fail with invalid_argument, except cocaine_log, which writes to stderr there.
 * Never call them from threads the app starts: such a call waits until cocaine_handle returns
 * (and then fails), so a handler that waits for that thread deadlocks.
 * A handler whose call waits for its own app is fine: the engine does not count a worker whose
 * invocation waits on a call against the app's pool-limit.
 *
 * Results: COCAINE_OK (0); COCAINE_CANCELLED (1): the invocation was cancelled (caller gone,
 * deadline, worker stopping) while the request was open: the host told the engine to drop it;
 * stop and return from cocaine_handle; COCAINE_ERROR (2): failed, with "code: message" in
 * `error` (NUL-terminated, truncated to error_len), `code` being the engine's error code:
 * app_not_found, event_not_found, deadline_exceeded, worker_crashed, handler_error, queue_full,
 * invalid_argument, call_depth_exceeded, revision_mismatch, unavailable... (docs/errors.md).
 *
 * Memory: a cocaine_buffer the host fills belongs to the host. It is valid until the
 * cocaine_handle that received it returns, when the host frees it; free it
 * sooner with cocaine_buffer_free (a loop of many calls should). data[len] is always 0, so a
 * text result may be read as a C string; data is never NULL after a successful call (but for
 * a storage_get that found nothing: {NULL, 0}). Strings written into app buffers (error, id_out,
 * next) are NUL-terminated and truncated to their size.
 */

/* storage_put / storage_delete revision: no condition. 0 = the key must not exist (put). */
#define COCAINE_ANY_REVISION (-1)

/* Log levels for cocaine_log. */
#define COCAINE_LOG_DEBUG 0
#define COCAINE_LOG_INFO 1
#define COCAINE_LOG_WARN 2
#define COCAINE_LOG_ERROR 3

/* Bytes the host hands out (see Memory above). */
typedef struct {
  uint8_t *data;
  size_t len;
} cocaine_buffer;

/*
 * The host's table. `size` is sizeof(cocaine_services) as the host was built: later hosts may
 * append members, so check it before using a member this header does not know (the helpers do).
 * The arguments are those of the helpers below.
 */
typedef struct cocaine_services {
  size_t size;
  int (*call)(void *ctx, const char *target, const char *headers_json, const uint8_t *body, size_t body_len,
              int64_t timeout_ms, cocaine_buffer *result, char *error, size_t error_len);
  int (*emit)(void *ctx, const char *target, const char *headers_json, const uint8_t *body, size_t body_len,
              const char *id, int64_t delay_ms, char *id_out, size_t id_out_len, int *duplicate, char *error,
              size_t error_len);
  int (*storage_get)(void *ctx, const char *key, cocaine_buffer *value, int64_t *revision, int *found, char *error,
                     size_t error_len);
  int (*storage_put)(void *ctx, const char *key, const uint8_t *value, size_t value_len, int64_t revision,
                     int64_t *new_revision, char *error, size_t error_len);
  int (*storage_delete)(void *ctx, const char *key, int64_t revision, int *deleted, char *error, size_t error_len);
  int (*storage_list)(void *ctx, const char *prefix, size_t limit, const char *after, cocaine_buffer *keys,
                      size_t *count, char *next, size_t next_len, char *error, size_t error_len);
  int (*log)(void *ctx, const char *level, const char *message, const char *fields_json);
  void (*buffer_free)(cocaine_buffer *buffer);
} cocaine_services;

/*
 * Optional. Called once, before cocaine_init, with the host's table (valid for the life of the
 * worker) when the engine speaks protocol 2; never called otherwise.
 */
void cocaine_bind(const cocaine_services *services);

#ifndef COCAINE_NO_DEFAULT_BIND
/* The table cocaine_bind received (NULL: no services). Weak: one copy however many files include this. */
/* Default visibility: the host must find cocaine_bind even in a -fvisibility=hidden build. */
__attribute__((weak, visibility("default"))) const cocaine_services *cocaine_services_table = NULL;
__attribute__((weak, visibility("default"))) void cocaine_bind(const cocaine_services *services) {
  cocaine_services_table = services;
}
#else
extern const cocaine_services *cocaine_services_table;
#endif

#define COCAINE_HAS_SERVICE(s, member) \
  ((s) != NULL && (s)->size >= offsetof(cocaine_services, member) + sizeof((s)->member) && (s)->member != NULL)

static inline int cocaine__unavailable(char *error, size_t error_len) {
  if (error != NULL && error_len > 0) {
    snprintf(error, error_len, "unavailable: no services (the engine speaks worker protocol 1, or the host is older)");
  }
  return COCAINE_ERROR;
}

/*
 * Calls `target` ("app@event") with the request body and headers (a JSON object of strings, or
 * NULL). The callee's whole result lands in `result`. timeout_ms: 0 = the invocation's deadline
 * (the sooner of the two applies otherwise).
 */
static inline int cocaine_call(void *ctx, const char *target, const char *headers_json, const uint8_t *body,
                               size_t body_len, int64_t timeout_ms, cocaine_buffer *result, char *error,
                               size_t error_len) {
  const cocaine_services *s = cocaine_services_table;
  if (!COCAINE_HAS_SERVICE(s, call)) return cocaine__unavailable(error, error_len);
  return s->call(ctx, target, headers_json, body, body_len, timeout_ms, result, error, error_len);
}

/*
 * Queues an event for `target` (fire and forget), returning once it is durably queued. id: NULL
 * for the engine's (retry-stable) id; delay_ms: 0 = now. The event's id is written to id_out
 * (NUL-terminated, if id_out_len > 0; may be NULL) and *duplicate (may be NULL) says whether the
 * queue already had it.
 */
static inline int cocaine_emit(void *ctx, const char *target, const char *headers_json, const uint8_t *body,
                               size_t body_len, const char *id, int64_t delay_ms, char *id_out, size_t id_out_len,
                               int *duplicate, char *error, size_t error_len) {
  const cocaine_services *s = cocaine_services_table;
  if (!COCAINE_HAS_SERVICE(s, emit)) return cocaine__unavailable(error, error_len);
  return s->emit(ctx, target, headers_json, body, body_len, id, delay_ms, id_out, id_out_len, duplicate, error,
                 error_len);
}

/* The app's storage: *found = 1 with the value and its revision, or *found = 0. */
static inline int cocaine_storage_get(void *ctx, const char *key, cocaine_buffer *value, int64_t *revision,
                                      int *found, char *error, size_t error_len) {
  const cocaine_services *s = cocaine_services_table;
  if (!COCAINE_HAS_SERVICE(s, storage_get)) return cocaine__unavailable(error, error_len);
  return s->storage_get(ctx, key, value, revision, found, error, error_len);
}

/*
 * Stores the value under key. revision: COCAINE_ANY_REVISION, or compare-and-set against the
 * current revision (0 = the key must not exist); a mismatch fails with revision_mismatch.
 * *new_revision (may be NULL) receives the value's revision.
 */
static inline int cocaine_storage_put(void *ctx, const char *key, const uint8_t *value, size_t value_len,
                                      int64_t revision, int64_t *new_revision, char *error, size_t error_len) {
  const cocaine_services *s = cocaine_services_table;
  if (!COCAINE_HAS_SERVICE(s, storage_put)) return cocaine__unavailable(error, error_len);
  return s->storage_put(ctx, key, value, value_len, revision, new_revision, error, error_len);
}

/* Deletes key (revision: COCAINE_ANY_REVISION or compare-and-set); *deleted (may be NULL): was it there. */
static inline int cocaine_storage_delete(void *ctx, const char *key, int64_t revision, int *deleted, char *error,
                                         size_t error_len) {
  const cocaine_services *s = cocaine_services_table;
  if (!COCAINE_HAS_SERVICE(s, storage_delete)) return cocaine__unavailable(error, error_len);
  return s->storage_delete(ctx, key, revision, deleted, error, error_len);
}

/*
 * One page of keys starting with prefix (NULL or "" = all), after the key `after` (NULL = from
 * the start), at most `limit` (0 = the engine's default). `keys` holds *count NUL-terminated keys
 * one after the other (walk them with p += strlen(p) + 1); `next` receives the cursor for the
 * next page ("" on the last page; keys are at most 256 characters, so 257 bytes suffice).
 */
static inline int cocaine_storage_list(void *ctx, const char *prefix, size_t limit, const char *after,
                                       cocaine_buffer *keys, size_t *count, char *next, size_t next_len,
                                       char *error, size_t error_len) {
  const cocaine_services *s = cocaine_services_table;
  if (!COCAINE_HAS_SERVICE(s, storage_list)) return cocaine__unavailable(error, error_len);
  return s->storage_list(ctx, prefix, limit, after, keys, count, next, next_len, error, error_len);
}

/*
 * One log record for the invocation (level COCAINE_LOG_*; fields_json a flat JSON object or
 * NULL). It does not wait for the engine. Without services it goes to stderr instead. Returns
 * COCAINE_OK, or COCAINE_ERROR for an invalid level or fields_json (the record is dropped).
 */
static inline int cocaine_log(void *ctx, int level, const char *message, const char *fields_json) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  const cocaine_services *s = cocaine_services_table;
  if (level < COCAINE_LOG_DEBUG || level > COCAINE_LOG_ERROR) return COCAINE_ERROR;
  if (!COCAINE_HAS_SERVICE(s, log)) {
    fprintf(stderr, "%s: %s%s%s\n", names[level], message ? message : "", fields_json ? " " : "",
            fields_json ? fields_json : "");
    return COCAINE_OK;
  }
  return s->log(ctx, names[level], message, fields_json);
}

/* Frees a buffer the host filled before the entry point returns; leaves it {NULL, 0}. */
static inline void cocaine_buffer_free(cocaine_buffer *buffer) {
  const cocaine_services *s = cocaine_services_table;
  if (buffer == NULL || buffer->data == NULL) return;
  if (COCAINE_HAS_SERVICE(s, buffer_free)) s->buffer_free(buffer);
}


#ifdef __cplusplus
}
#endif

#endif /* COCAINE_WORKER_H */
