"""The events every language's conformance app implements (test/conformance/kit.ts drives them)."""
import json
import os
import signal
import sys
import threading
import time

import cocaine
from cocaine import handler

_counter = 0
_counter_lock = threading.Lock()


@handler
def echo(request):
    return request.body()


@handler
def stream(request):
    count = int(request.text() or "0")
    return (str(i) for i in range(count))


@handler
def upper(request):
    for chunk in request:
        yield chunk.upper()


@handler
def big(request):
    size = int(request.text())
    pattern = bytes(range(251))
    repeats, rest = divmod(size, 251)
    return pattern * repeats + pattern[:rest]


@handler
def fail(request):
    raise RuntimeError("boom: %s" % request.text())


@handler
def counter(request):
    global _counter
    with _counter_lock:
        _counter += 1
        return str(_counter)


@handler
def sleep(request):
    milliseconds = int(request.text() or "0")
    if request.cancelled.wait(milliseconds / 1000):
        print("sleep cancelled", file=sys.stderr)
    return "slept"


@handler
def crash(request):
    sys.stderr.write("about to crash\n")
    sys.exit(3)


@handler
def hang(request):
    # Sent to this thread, not the process: a process-directed SIGSTOP may be taken by another
    # thread, and this one could return (and answer) before the whole process stops.
    signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)


@handler
def log(request):
    print("hello stdout")
    print("hello stderr", file=sys.stderr)
    return "ok"


@handler
def concurrent(request):
    time.sleep(0.2)
    return "done"


@handler
def headers(request):
    return json.dumps(request.headers)


# Services (protocol version 2; the kit's "services" group). A service error fails the handler
# with "<code>: <message>", so the caller sees the engine's code.
def _failure(error):
    return RuntimeError("%s: %s" % (error.code, error.message))


@handler
def relay(request):
    """"<app@event> <payload>": calls the target with the payload and answers its result."""
    target, _, payload = request.text().partition(" ")
    try:
        return request.call(target, payload).body()
    except cocaine.ServiceError as error:
        raise _failure(error)


@handler
def emit(request):
    """"<app@event> <id or -> <payload>": queues the event; answers "<id> <duplicate>"."""
    target, _, rest = request.text().partition(" ")
    event_id, _, payload = rest.partition(" ")
    try:
        queued = request.emit(target, payload, id=None if event_id == "-" else event_id)
    except cocaine.ServiceError as error:
        raise _failure(error)
    return "%s %s" % (queued["id"], "true" if queued["duplicate"] else "false")


@handler
def kv(request):
    """The app's storage, one command per call (see examples/node-conformance/index.js)."""
    command, key, *rest = request.text().split(" ")
    storage = request.storage
    try:
        if command == "put":
            return str(storage.put(key, rest[0], revision=int(rest[1]) if len(rest) > 1 else None))
        if command == "get":
            found = storage.get(key)
            return "none" if found is None else "%d %s" % (found[1], found[0].decode())
        if command == "delete":
            return "deleted" if storage.delete(key, revision=int(rest[0]) if rest else None) else "missing"
        if command == "list":
            keys, after = storage.list(key, limit=int(rest[0]), after=rest[1] if len(rest) > 1 else None)
            return "%s next=%s" % (",".join(keys), after or "")
    except cocaine.ServiceError as error:
        raise _failure(error)
    raise RuntimeError('unknown kv command "%s"' % command)


@handler
def note(request):
    """"<level> <message>": one structured log record with the field kit=conformance."""
    level, _, message = request.text().partition(" ")
    getattr(request.log, level)(message, kit="conformance")
    return "ok"
