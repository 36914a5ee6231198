"""The events every language's conformance app implements (test/conformance/kit.ts drives them)."""
import json
import os
import signal
import sys
import threading
import time

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
