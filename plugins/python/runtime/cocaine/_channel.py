"""One worker-opened channel (protocol version 2, "Services"): the engine's answer arrives here
from the reader thread, and the handler that asked waits on it, in a thread (sync API) or in its
event loop (async API)."""
import threading
from collections import deque

import cocaine


class Channel:
    __slots__ = ("number", "services", "_chunks", "_ended", "_error", "_cancelled", "_cond", "_waiters", "send_lock", "opened")

    def __init__(self, number, services):
        self.number = number
        self.services = services
        self._chunks = deque()
        self._ended = False
        self._error = None  # (code, message) from the engine
        self._cancelled = None  # the local cancel's code: 'cancelled' or 'deadline'
        self._cond = threading.Condition(threading.Lock())
        self._waiters = []
        # Held while a frame of this channel is sent, so that a cancel's ERROR is the last one.
        self.send_lock = threading.Lock()
        #: The SERVICE frame went out (the engine knows the channel).
        self.opened = False

    # Engine side (the reader thread).
    def _push(self, chunk):
        with self._cond:
            if self._ended or self._error or self._cancelled:
                return
            self._chunks.append(chunk)
            self._wake()

    def _end(self):
        with self._cond:
            if self._ended or self._error or self._cancelled:
                return
            self._ended = True
            self._wake()

    def _fail(self, code, message):
        with self._cond:
            if self._ended or self._error or self._cancelled:
                return
            if code == "cancelled":
                # The engine cancels a service channel when the invocation it serves goes away:
                # to the handler that is its own cancellation.
                self._cancelled = code
            else:
                self._error = (code, message)
            self._wake()

    def cancel(self, code):
        """Local cancel: wakes the waiters with cocaine.Cancelled(code). Returns whether the engine's
        side was still open (the caller then tells the engine)."""
        with self._cond:
            if self._ended or self._error or self._cancelled:
                return False
            self._cancelled = code
            self._wake()
            return True

    @property
    def finished(self):
        """The engine's answer is complete (END or ERROR), or the channel was cancelled here."""
        return self._ended or self._error is not None or self._cancelled is not None

    def _wake(self):
        self._cond.notify_all()
        waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:
                pass  # that loop already closed

    def _raise(self):
        if self._cancelled is not None:
            raise cocaine.Cancelled(self._cancelled)
        code, message = self._error
        raise cocaine.ServiceError(code, message)

    # Handler side, blocking.
    def wait_first(self):
        """Waits for the first piece of the answer (a chunk, END or ERROR); raises on ERROR."""
        with self._cond:
            while not self._chunks and not self.finished:
                self._cond.wait()
            if not self._chunks and (self._error or self._cancelled):
                self._raise()

    def next_chunk(self):
        """The next chunk of the answer, or None after END; raises on ERROR or cancel."""
        with self._cond:
            while True:
                if self._cancelled:
                    self._raise()
                if self._chunks:
                    return self._chunks.popleft()
                if self._ended:
                    return None
                if self._error:
                    self._raise()
                self._cond.wait()

    def read_all(self):
        """The rest of the answer (bytes), once the engine ended it."""
        with self._cond:
            while not self.finished:
                self._cond.wait()
            return self._take_all()

    def _take_all(self):
        if not self._ended:
            self._raise()
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        return body

    # Handler side, in an event loop.
    async def _until(self, ready):
        import asyncio

        while True:
            with self._cond:
                if ready():
                    return
                loop = asyncio.get_running_loop()
                future = loop.create_future()
                self._waiters.append((loop, future))
            await future

    async def wait_first_async(self):
        await self._until(lambda: self._chunks or self.finished)
        with self._cond:
            if not self._chunks and (self._error or self._cancelled):
                self._raise()

    async def next_chunk_async(self):
        await self._until(lambda: self._chunks or self.finished)
        return self.next_chunk()

    async def read_all_async(self):
        await self._until(lambda: self.finished)
        with self._cond:
            return self._take_all()


def _resolve(future):
    if not future.done():
        future.set_result(None)
