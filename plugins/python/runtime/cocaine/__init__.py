"""The API a Python app sees (plugins/python/README.md).

    from cocaine import handler

    @handler                 # the event is the function's name
    def echo(request):
        return request.body()

    @handler("ping")         # or named explicitly
    def pong(request):
        return "pong"

Without any @handler, the app module's public functions are its handlers, named like the events.
With worker protocol version 2 a handler also calls other apps (`request.call`), queues events
(`request.emit`), keeps state (`request.storage`) and logs (`request.log`).
"""
import threading
from collections import deque

__all__ = ["handler", "handlers", "Request", "Cancelled", "ServiceError"]

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


class ServiceError(Exception):
    """A service request failed: `code` is the engine's error code (docs/errors.md: app_not_found,
    deadline_exceeded, worker_crashed, handler_error, call_depth_exceeded, revision_mismatch...),
    `message` its message."""

    def __init__(self, code, message=""):
        super().__init__("%s: %s" % (code, message) if message else code)
        self.code = code
        self.message = message


class Request:
    """One invocation. The body arrives in chunks while the handler runs: read it whole with
    body()/text()/json(), or chunk by chunk with `for chunk in request` (or `async for`)."""

    __slots__ = ("event", "headers", "deadline", "cancelled", "cancel_code", "_chunks", "_ended", "_cond", "_waker", "_origin", "_services", "_storage", "_log")

    def __init__(self, event, headers, deadline, origin=None):
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
        # (worker, channel) of the invocation; its Services are made on first use, and _services
        # holds the reason instead when the invocation closed before any use.
        self._origin = origin
        self._services = None
        self._storage = None
        self._log = None

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
        self._close_services(code)

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

    # Services (protocol version 2; plugins/python/README.md, "Services").
    def _svc(self):
        """This invocation's Services (cocaine/_services.py), made on first use: a handler that
        uses none pays nothing for them."""
        services = self._services
        if services is None or isinstance(services, str):
            if self._origin is None:
                raise ServiceError("unsupported", "this request is not served by a cocaine worker")
            from cocaine._services import Services

            with self._cond:
                services = self._services
                if services is None or isinstance(services, str):
                    closed = services or self.cancel_code
                    services = Services(*self._origin)
                    if closed:
                        services.close(closed)
                    self._services = services
        return services

    def _close_services(self, why):
        """The invocation was cancelled ('cancelled', 'deadline') or finished ('finished')."""
        with self._cond:
            services = self._services
            if services is None:
                self._services = why
                return
            if isinstance(services, str):
                return
        services.close(why)

    def _api(self):
        self._svc()
        from cocaine import _api

        return _api

    def call(self, target, body=b"", headers=None, timeout=None, routing_key=None, broadcast=False):
        """Calls `app@event` with body (bytes, str or an iterable of chunks, streamed) and returns
        its CallResult once the first piece of the result (or the error) arrived: iterate it for
        the chunks, or read it with body()/text()/json(). `timeout` in seconds (default: this
        call's own deadline). Raises ServiceError, or Cancelled once this call was cancelled."""
        api = self._api()
        channel = self._svc().request("call", api.call_args(target, headers, timeout, routing_key, broadcast), body)
        channel.wait_first()
        return api.CallResult(channel)

    def emit(self, target, body=b"", headers=None, delay=None, id=None):
        """Queues the event `app@event` (fire-and-forget) and returns {"id": ..., "duplicate": ...}
        once it is durably queued. `delay` in seconds; `id` for idempotence (default: derived
        from this event's id, see docs/worker-protocol.md)."""
        api = self._api()
        return api.emitted(self._svc().request("emit", api.emit_args(target, headers, delay, id), body).read_all())

    async def call_async(self, target, body=b"", headers=None, timeout=None, routing_key=None, broadcast=False):
        """call() for async handlers: body may also be an async iterable; the result is an
        AsyncCallResult (`async for chunk in result`, `await result.body()`)."""
        api = self._api()
        channel = await self._svc().request_async("call", api.call_args(target, headers, timeout, routing_key, broadcast), body)
        await channel.wait_first_async()
        return api.AsyncCallResult(channel)

    async def emit_async(self, target, body=b"", headers=None, delay=None, id=None):
        api = self._api()
        channel = await self._svc().request_async("emit", api.emit_args(target, headers, delay, id), body)
        return api.emitted(await channel.read_all_async())

    @property
    def storage(self):
        """The app's key-value store: get, put, delete, list (and their _async twins)."""
        if self._storage is None:
            self._storage = self._api().Storage(self._svc())
        return self._storage

    @property
    def log(self):
        """Structured logs of this invocation: log.debug/info/warn/error(message, **fields)."""
        if self._log is None:
            from cocaine import _api

            self._log = _api.Log(self._svc() if self._origin is not None else None)
        return self._log

    def __repr__(self):
        return "<cocaine.Request event=%r>" % (self.event,)


def _resolve(future):
    if not future.done():
        future.set_result(None)
