"""One invocation: runs its handler in its own thread and sends the result on its channel."""
import sys

from cocaine import _codec, _wire

_JSON_TYPES = (dict, list, int, float, bool)
_CHUNK_TYPES = (bytes, bytearray, memoryview)


class Invocation:
    __slots__ = ("worker", "channel", "fn", "request", "done", "loop", "task")

    def __init__(self, worker, channel, fn, request):
        self.worker = worker
        self.channel = channel
        self.fn = fn
        self.request = request
        self.done = False
        self.loop = None
        self.task = None

    # Reader thread: the engine cancelled the channel (caller gone or deadline).
    def cancel(self, code):
        self._close()
        loop, task = self.loop, self.task
        if loop is not None and task is not None:
            # Before the request wakes its waiters: the loop runs the cancel first, so an awaiting
            # handler always sees asyncio.CancelledError, never a race of it and Cancelled.
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass  # the loop already closed
        self.request._cancel(code)

    def run(self):
        try:
            result = self.fn(self.request)
            if hasattr(result, "__await__") or hasattr(result, "__aiter__"):
                result = self._run_async(result)
            self._deliver(result)
        except SystemExit as error:
            # sys.exit() in a handler exits the worker, as it would a script.
            code = error.code
            if code is not None and not isinstance(code, int):
                sys.stderr.write("%s\n" % code)
                code = 1
            self.worker.exit(code or 0)
        except BaseException as error:
            self._fail(error)

    def _deliver(self, value):
        if self.done:
            _close_iterator(value)
            return
        channel = self.channel
        if value is None:
            self._finish(())
        elif isinstance(value, _CHUNK_TYPES):
            value = _chunk(value)
            self._finish(((_wire.CHUNK, channel, value),) if len(value) else ())
        elif isinstance(value, str):
            self._finish(((_wire.CHUNK, channel, value.encode()),) if value else ())
        elif isinstance(value, _JSON_TYPES):
            self._finish(((_wire.CHUNK, channel, _codec.dumps_any(value)),))
        elif hasattr(value, "__iter__"):
            self._pump(iter(value))
        else:
            raise TypeError("a handler must return bytes, str, None, a dict/list (JSON), or an iterable of chunks, got %s" % _type_name(value))

    def _pump(self, iterator):
        send = self.worker.writer.send_one
        channel = self.channel
        try:
            for item in iterator:
                if self.done:
                    break
                send(_wire.CHUNK, channel, _chunk(item))
            else:
                self._finish(())
        finally:
            if self.done:
                _close_iterator(iterator)

    def _run_async(self, awaitable):
        import asyncio

        loop = asyncio.new_event_loop()
        try:
            self.loop = loop
            self.task = loop.create_task(self._async_main(awaitable))
            if self.done:
                self.task.cancel()
            return loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            return None
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                self.loop = None
                loop.close()

    async def _async_main(self, awaitable):
        value = await awaitable if hasattr(awaitable, "__await__") else awaitable
        if not hasattr(value, "__aiter__"):
            return value
        send = self.worker.writer.send_one
        channel = self.channel
        try:
            async for item in value:
                if self.done:
                    break
                send(_wire.CHUNK, channel, _chunk(item))
            else:
                self._finish(())
        finally:
            aclose = getattr(value, "aclose", None)
            if self.done and aclose is not None:
                await aclose()
        return None

    def _finish(self, frames):
        if self.done:
            return
        self._close()
        self._close_services()
        self.worker.writer.send(frames + ((_wire.END, self.channel, b""),))

    def _fail(self, error):
        if self.done:
            return
        self._close()
        self._close_services()
        try:
            message = "%s: %s" % (type(error).__name__, error)
        except BaseException:
            # An exception whose str() raises still fails only its own call.
            message = "%s (its message could not be read)" % type(error).__name__
        self.worker.send_error(self.channel, "handler", message)

    def _close_services(self):
        # The handler is done: the service channels it left open (a call result it did not read
        # to the end) are cancelled, before its END or ERROR goes out.
        self.request._close_services("finished")

    def _close(self):
        self.done = True
        self.worker.open.pop(self.channel, None)


def _chunk(item):
    if isinstance(item, (bytes, bytearray)):
        return item
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, memoryview):
        # A view of wider items (array('i'), numpy) is sent as its bytes; len() counts items.
        return item.cast("B") if item.format != "B" or item.ndim != 1 else item
    raise TypeError("a streamed chunk must be bytes, bytearray, memoryview or str, got %s" % _type_name(item))


def _type_name(value):
    kind = type(value)
    module = getattr(kind, "__module__", "builtins")
    return kind.__name__ if module == "builtins" else "%s.%s" % (module, kind.__qualname__)


def _close_iterator(value):
    close = getattr(value, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            pass
