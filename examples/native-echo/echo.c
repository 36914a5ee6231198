/*
 * native-echo: the native plugin's example and conformance app (the same events as every
 * language's conformance app, plus native-only ones: segv, wordcount, headers; and relay and
 * visits, which use the engine's services, cocaine/worker.h "Services"; and the conformance
 * kit's services events emit, kv and note, test/conformance/checks-services.ts).
 * Build: make   (or: cc -shared -fPIC -O2 -Wall -Werror -I../../plugins/native/include -o echo.so echo.c)
 */
#include <cocaine/worker.h>

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned long calls;
static unsigned long counter;

int cocaine_abi_version(void) { return COCAINE_NATIVE_ABI_VERSION; }

int cocaine_init(const char *app, char *error, size_t error_len) {
  (void)error;
  (void)error_len;
  setvbuf(stdout, NULL, _IOLBF, 0);
  fprintf(stderr, "native-echo: init for app %s\n", app);
  return 0;
}

const char *cocaine_events(void) {
  return "echo,stream,upper,big,fail,counter,sleep,crash,hang,log,concurrent,segv,wordcount,headers,relay,visits,emit,kv,note";
}

void cocaine_shutdown(void) { fprintf(stderr, "native-echo: shutdown after %lu calls\n", calls); }

/* The body as a non-negative number (bodies are not NUL-terminated). */
static unsigned long body_number(const uint8_t *body, size_t len) {
  unsigned long value = 0;
  for (size_t i = 0; i < len && body[i] >= '0' && body[i] <= '9'; i++) value = value * 10 + (body[i] - '0');
  return value;
}

static int reply(cocaine_write_fn write, void *ctx, const char *text) {
  write(ctx, (const uint8_t *)text, strlen(text));
  return COCAINE_OK;
}

static void nap_ms(long ms) {
  struct timespec delay = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&delay, &delay) != 0) {
  }
}

static int stream(const uint8_t *body, size_t len, cocaine_write_fn write, void *ctx) {
  unsigned long count = body_number(body, len);
  char text[32];
  for (unsigned long i = 0; i < count; i++) {
    int n = snprintf(text, sizeof text, "%lu", i);
    if (write(ctx, (const uint8_t *)text, (size_t)n) == COCAINE_CANCELLED) break;
  }
  return COCAINE_OK;
}

static int upper(const uint8_t *body, size_t len, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  uint8_t *out = malloc(len ? len : 1);
  if (!out) {
    snprintf(error, error_len, "out of memory for %zu bytes", len);
    return COCAINE_ERROR;
  }
  for (size_t i = 0; i < len; i++) out[i] = (uint8_t)toupper(body[i]);
  write(ctx, out, len);
  free(out);
  return COCAINE_OK;
}

/* N bytes of the pattern i % 251, written in 1 MiB pieces. */
static int big(const uint8_t *body, size_t len, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  size_t size = body_number(body, len);
  size_t piece = 1024 * 1024;
  uint8_t *out = malloc(piece);
  if (!out) {
    snprintf(error, error_len, "out of memory");
    return COCAINE_ERROR;
  }
  for (size_t offset = 0; offset < size; offset += piece) {
    size_t n = size - offset < piece ? size - offset : piece;
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)((offset + i) % 251);
    if (write(ctx, out, n) == COCAINE_CANCELLED) break;
  }
  free(out);
  return COCAINE_OK;
}

/* Sleeps for the body's milliseconds in 10 ms naps, stopping early when the call is cancelled. */
static int sleep_event(const uint8_t *body, size_t len, cocaine_write_fn write, void *ctx) {
  long ms = (long)body_number(body, len);
  for (long slept = 0; slept < ms; slept += 10) {
    if (write(ctx, NULL, 0) == COCAINE_CANCELLED) {
      fprintf(stderr, "sleep cancelled\n");
      return COCAINE_ERROR;
    }
    nap_ms(ms - slept < 10 ? ms - slept : 10);
  }
  return reply(write, ctx, "slept");
}

static int wordcount(const uint8_t *body, size_t len, cocaine_write_fn write, void *ctx) {
  unsigned long words = 0;
  int inside = 0;
  for (size_t i = 0; i < len; i++) {
    int space = isspace(body[i]);
    if (!space && !inside) words++;
    inside = !space;
  }
  char text[32];
  snprintf(text, sizeof text, "%lu", words);
  return reply(write, ctx, text);
}

/* relay: the body is "app@event rest"; calls app@event with `rest` and answers its result. */
static int relay(const uint8_t *body, size_t len, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  char target[256];
  size_t n = 0;
  while (n < len && n < sizeof target - 1 && body[n] != ' ') n++;
  memcpy(target, body, n);
  target[n] = 0;
  size_t rest = n < len ? n + 1 : len;
  cocaine_buffer result;
  int rc = cocaine_call(ctx, target, NULL, body + rest, len - rest, 0, &result, error, error_len);
  if (rc != COCAINE_OK) return COCAINE_ERROR; /* cancelled, or `error` says why */
  write(ctx, result.data, result.len);
  return COCAINE_OK;
}

/* visits: a counter in the app's storage, incremented with compare-and-set, logged. */
static int visits(cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  for (int attempt = 0; attempt < 5; attempt++) {
    cocaine_buffer value;
    int64_t revision = 0;
    int found = 0;
    if (cocaine_storage_get(ctx, "visits", &value, &revision, &found, error, error_len) != COCAINE_OK) return COCAINE_ERROR;
    unsigned long count = (found ? strtoul((const char *)value.data, NULL, 10) : 0) + 1; /* data[len] is 0 */
    char text[32];
    int n = snprintf(text, sizeof text, "%lu", count);
    int rc = cocaine_storage_put(ctx, "visits", (const uint8_t *)text, (size_t)n, found ? revision : 0, NULL, error,
                                 error_len);
    if (rc == COCAINE_OK) {
      char fields[64];
      snprintf(fields, sizeof fields, "{\"count\":%lu}", count);
      cocaine_log(ctx, COCAINE_LOG_INFO, "visit", fields);
      return reply(write, ctx, text);
    }
    if (rc != COCAINE_ERROR || strncmp(error, "revision_mismatch:", 18) != 0) return COCAINE_ERROR;
  }
  return COCAINE_ERROR; /* `error` holds the last revision_mismatch */
}

/* The body as a NUL-terminated copy (at most size - 1 bytes), split in place at spaces into at most
 * `max` words (the last word keeps the rest of the text); returns the number of words. */
static int split_body(const uint8_t *body, size_t len, char *copy, size_t size, char **words, int max) {
  size_t n = len < size - 1 ? len : size - 1;
  memcpy(copy, body, n);
  copy[n] = 0;
  int count = 0;
  char *p = copy;
  while (count < max) {
    words[count++] = p;
    if (count == max) break;
    char *space = strchr(p, ' ');
    if (!space) break;
    *space = 0;
    p = space + 1;
  }
  return count;
}

/* emit: "app@event <id or -> payload" → "<id> <duplicate>" once the event is queued. */
static int emit_event(const uint8_t *body, size_t len, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  char copy[4096];
  char *words[3] = {"", "-", ""};
  split_body(body, len, copy, sizeof copy, words, 3);
  char id[300];
  int duplicate = 0;
  const char *wanted = strcmp(words[1], "-") == 0 ? NULL : words[1];
  if (cocaine_emit(ctx, words[0], NULL, (const uint8_t *)words[2], strlen(words[2]), wanted, 0, id, sizeof id, &duplicate,
                   error, error_len) != COCAINE_OK)
    return COCAINE_ERROR;
  char text[320];
  snprintf(text, sizeof text, "%s %s", id, duplicate ? "true" : "false");
  return reply(write, ctx, text);
}

/* kv: the app's storage, one command per call ("put k v [rev]", "get k", "delete k [rev]",
 * "list prefix limit [after]"), answered as examples/node-conformance/index.js does. */
static int kv(const uint8_t *body, size_t len, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  char copy[4096];
  char *words[5] = {"", "", NULL, NULL, NULL};
  int n = split_body(body, len, copy, sizeof copy, words, 5);
  const char *command = words[0], *key = words[1];
  char text[64];
  if (strcmp(command, "put") == 0 && n >= 3) {
    int64_t revision = n >= 4 ? strtoll(words[3], NULL, 10) : COCAINE_ANY_REVISION, stored = 0;
    if (cocaine_storage_put(ctx, key, (const uint8_t *)words[2], strlen(words[2]), revision, &stored, error, error_len) != COCAINE_OK)
      return COCAINE_ERROR;
    snprintf(text, sizeof text, "%lld", (long long)stored);
    return reply(write, ctx, text);
  }
  if (strcmp(command, "get") == 0) {
    cocaine_buffer value;
    int64_t revision = 0;
    int found = 0;
    if (cocaine_storage_get(ctx, key, &value, &revision, &found, error, error_len) != COCAINE_OK) return COCAINE_ERROR;
    if (!found) return reply(write, ctx, "none");
    snprintf(text, sizeof text, "%lld ", (long long)revision);
    write(ctx, (const uint8_t *)text, strlen(text));
    write(ctx, value.data, value.len);
    return COCAINE_OK;
  }
  if (strcmp(command, "delete") == 0) {
    int deleted = 0;
    int64_t revision = n >= 3 ? strtoll(words[2], NULL, 10) : COCAINE_ANY_REVISION;
    if (cocaine_storage_delete(ctx, key, revision, &deleted, error, error_len) != COCAINE_OK) return COCAINE_ERROR;
    return reply(write, ctx, deleted ? "deleted" : "missing");
  }
  if (strcmp(command, "list") == 0 && n >= 3) {
    cocaine_buffer keys;
    size_t count = 0;
    char next[300];
    if (cocaine_storage_list(ctx, key, strtoul(words[2], NULL, 10), n >= 4 ? words[3] : NULL, &keys, &count, next, sizeof next,
                             error, error_len) != COCAINE_OK)
      return COCAINE_ERROR;
    const char *p = (const char *)keys.data;
    for (size_t i = 0; i < count; i++, p += strlen(p) + 1) {
      if (i) write(ctx, (const uint8_t *)",", 1);
      write(ctx, (const uint8_t *)p, strlen(p));
    }
    write(ctx, (const uint8_t *)" next=", 6);
    return reply(write, ctx, next);
  }
  snprintf(error, error_len, "unknown kv command \"%s\"", command);
  return COCAINE_ERROR;
}

/* note: "<level> <message>" → one structured log record with the field kit=conformance. */
static int note(const uint8_t *body, size_t len, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  static const char *const levels[] = {"debug", "info", "warn", "error"};
  char copy[4096];
  char *words[2] = {"", ""};
  split_body(body, len, copy, sizeof copy, words, 2);
  for (int level = COCAINE_LOG_DEBUG; level <= COCAINE_LOG_ERROR; level++) {
    if (strcmp(words[0], levels[level]) != 0) continue;
    cocaine_log(ctx, level, words[1], "{\"kit\":\"conformance\"}");
    return reply(write, ctx, "ok");
  }
  snprintf(error, error_len, "unknown log level \"%s\"", words[0]);
  return COCAINE_ERROR;
}

int cocaine_handle(const cocaine_request *req, cocaine_write_fn write, void *ctx, char *error, size_t error_len) {
  const char *event = req->event;
  const uint8_t *body = req->body;
  size_t body_len = req->body_len;
  calls++;
  if (strcmp(event, "echo") == 0) {
    write(ctx, body, body_len);
    return COCAINE_OK;
  }
  if (strcmp(event, "stream") == 0) return stream(body, body_len, write, ctx);
  if (strcmp(event, "upper") == 0) return upper(body, body_len, write, ctx, error, error_len);
  if (strcmp(event, "big") == 0) return big(body, body_len, write, ctx, error, error_len);
  if (strcmp(event, "fail") == 0) {
    snprintf(error, error_len, "boom: %.*s", (int)body_len, (const char *)body);
    return COCAINE_ERROR;
  }
  if (strcmp(event, "counter") == 0) {
    char text[32];
    snprintf(text, sizeof text, "%lu", ++counter);
    return reply(write, ctx, text);
  }
  if (strcmp(event, "sleep") == 0) return sleep_event(body, body_len, write, ctx);
  if (strcmp(event, "crash") == 0) {
    fputs("about to crash\n", stderr);
    fflush(stderr);
    _exit(3);
  }
  if (strcmp(event, "hang") == 0) {
    raise(SIGSTOP);
    return reply(write, ctx, "resumed");
  }
  if (strcmp(event, "log") == 0) {
    printf("hello stdout\n");
    fflush(stdout);
    fprintf(stderr, "hello stderr\n");
    return reply(write, ctx, "ok");
  }
  if (strcmp(event, "concurrent") == 0) {
    nap_ms(200);
    return reply(write, ctx, "done");
  }
  if (strcmp(event, "segv") == 0) {
    fputs("about to dereference NULL\n", stderr);
    fflush(stderr);
    volatile int *nowhere = NULL;
    *nowhere = 1;
    return COCAINE_OK;
  }
  if (strcmp(event, "wordcount") == 0) return wordcount(body, body_len, write, ctx);
  /* The headers as the host passes them: a JSON object. */
  if (strcmp(event, "headers") == 0) return reply(write, ctx, req->headers_json);
  if (strcmp(event, "relay") == 0) return relay(body, body_len, write, ctx, error, error_len);
  if (strcmp(event, "visits") == 0) return visits(write, ctx, error, error_len);
  if (strcmp(event, "emit") == 0) return emit_event(body, body_len, write, ctx, error, error_len);
  if (strcmp(event, "kv") == 0) return kv(body, body_len, write, ctx, error, error_len);
  if (strcmp(event, "note") == 0) return note(body, body_len, write, ctx, error, error_len);
  return COCAINE_NOT_FOUND;
}
