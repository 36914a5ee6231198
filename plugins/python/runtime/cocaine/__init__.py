"""The API a Python app sees (plugins/python/README.md).

    from cocaine import handler

    @handler                 # the event is the function's name
    def echo(request):
        return request.body()

    @handler("ping")         # or named explicitly
    def pong(request):
        return "pong"

Without any @handler, the app module's public functions are its handlers, named like the events.
"""
import threading
from collections import deque

__all__ = ["handler", "handlers", "Request", "Cancelled"]

_registry = {}


def handler(name_or_fn=None, *, name=None):
    """Registers a function as the handler of an event: `@handler`, `@handler("event")` or
    `@handler(name="event")`."""
    if callable(name_or_fn):
        _registry[name or name_or_fn.__name__] = name_or_fn
        return name_or_fn
    event = name_or_fn if name_or_fn is not None else name

    def register(fn):
        _registry[event or fn.__name__] = fn
        return fn

    return register


def handlers():
    """The handlers registered with @handler so far (a copy)."""
    return dict(_registry)


class Cancelled(Exception):
    """Raised by body(), text(), json() and iteration once the call was cancelled or its
    deadline passed; `code` is 'cancelled' or 'deadline'."""

    def __init__(self, code):
        super().__init__("the deadline of the call passed" if code == "deadline" else "the call was cancelled")
        self.code = code


class Request:
    """One invocation. The body arrives in chunks while the handler runs: read it whole with
    body()/text()/json(), or chunk by chunk with `for chunk in request` (or `async for`)."""

    __slots__ = ("event", "headers", "deadline", "cancelled", "cancel_code", "_chunks", "_ended", "_cond", "_waker")

    def __init__(self, event, headers, deadline):
        self.event = event
        self.headers = headers
        self.deadline = deadline
        #: Set when the call is cancelled or its deadline passed; nothing the handler returns
        #: afterwards is sent. Wait on it instead of time.sleep() to stop early.
        self.cancelled = threading.Event()
        self.cancel_code = None
        self._chunks = deque()
        self._ended = False
        self._cond = threading.Condition(threading.Lock())
        self._waker = None

    # Engine side (the runtime's reader thread).
    def _push(self, chunk):
        with self._cond:
            if self._ended or self.cancel_code:
                return
            self._chunks.append(chunk)
            self._cond.notify_all()
        self._wake()

    def _end(self):
        with self._cond:
            if self._ended or self.cancel_code:
                return
            self._ended = True
            self._cond.notify_all()
        self._wake()

    def _cancel(self, code):
        with self._cond:
            if self.cancel_code:
                return
            self.cancel_code = code
            self._cond.notify_all()
        self.cancelled.set()
        self._wake()

    def _wake(self):
        waker = self._waker
        if waker is not None:
            self._waker = None
            loop, future = waker
            loop.call_soon_threadsafe(_resolve, future)

    # Handler side.
    def body(self):
        """The whole body (bytes), once the engine closed it."""
        with self._cond:
            while not self._ended and not self.cancel_code:
                self._cond.wait()
            if self.cancel_code:
                raise Cancelled(self.cancel_code)
            chunks = self._chunks
            if not chunks:
                return b""
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            return body

    def text(self, encoding="utf-8"):
        return self.body().decode(encoding)

    def json(self):
        import json

        return json.loads(self.body())

    def __iter__(self):
        cond, chunks = self._cond, self._chunks
        while True:
            with cond:
                while not chunks and not self._ended and not self.cancel_code:
                    cond.wait()
                if self.cancel_code:
                    raise Cancelled(self.cancel_code)
                if not chunks:
                    return
                chunk = chunks.popleft()
            yield chunk

    def __aiter__(self):
        return self._async_chunks()

    async def _async_chunks(self):
        import asyncio

        cond, chunks = self._cond, self._chunks
        while True:
            with cond:
                if self.cancel_code:
                    raise Cancelled(self.cancel_code)
                if chunks:
                    chunk = chunks.popleft()
                elif self._ended:
                    return
                else:
                    loop = asyncio.get_running_loop()
                    future = loop.create_future()
                    self._waker = (loop, future)
                    chunk = None
            if chunk is None:
                await future
                continue
            yield chunk

    def __repr__(self):
        return "<cocaine.Request event=%r>" % (self.event,)


def _resolve(future):
    if not future.done():
        future.set_result(None)
