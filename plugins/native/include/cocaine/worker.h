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
 *
 * Lifecycle
 *   1. The host loads the shared object and calls cocaine_abi_version(). A missing symbol or a
 *      version other than the host's COCAINE_NATIVE_ABI_VERSION stops the worker (exit status 1,
 *      the reason on stderr) before the handshake, so the engine reports a failed start.
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

#ifdef __cplusplus
}
#endif

#endif /* COCAINE_WORKER_H */
