"""A handler's services (protocol version 2, docs/worker-protocol.md "Services"): call, emit,
storage over worker-opened channels, and log records as LOG frames. One `Services` per
invocation: it knows the parent channel and the service channels still open, so that a cancel
of the invocation cancels them too."""
import sys
import threading

import cocaine
from cocaine import _codec, _wire
from cocaine._channel import Channel

_CHUNK_TYPES = (bytes, bytearray, memoryview, str)


class Services:
    __slots__ = ("worker", "parent", "_open", "_lock", "_closed")

    def __init__(self, worker, parent):
        self.worker = worker
        self.parent = parent
        self._open = set()
        self._lock = threading.Lock()
        self._closed = None  # why no new channel may open: 'cancelled', 'deadline' or 'finished'

    @property
    def enabled(self):
        return self.worker.protocol >= 2

    # Opening a channel and sending the request.
    def _open_channel(self):
        if not self.enabled:
            raise cocaine.ServiceError(
                "unsupported",
                "services (call, emit, storage) need worker protocol version 2; this engine speaks version %d (COCAINE_PROTOCOL)" % self.worker.protocol,
            )
        with self._lock:
            closed = self._closed
            if closed is None:
                channel = Channel(self.worker.next_channel(), self)
                self._open.add(channel)
                # Registered before the request goes out: the answer may come at once. Under the
                # lock: a close() now finds it in both places.
                self.worker.services[channel.number] = channel
        if closed == "finished":
            raise cocaine.ServiceError("cancelled", "the handler's invocation has already finished")
        if closed is not None:
            raise cocaine.Cancelled(closed)
        return channel

    def _head(self, service, args):
        payload = _codec.dumps({"service": service, "parent": self.parent, "args": args})
        if len(payload) > _wire.MAX_PAYLOAD:
            raise ValueError("the %s request's arguments (headers, target, key) are over the 64 MiB frame limit" % service)
        return payload

    def _send(self, channel, frames):
        """Sends frames on the channel unless it is finished; returns whether they went out."""
        with channel.send_lock:
            if channel.finished:
                return False
            self.worker.writer.send(frames)
            channel.opened = True
            return True

    def request(self, service, args, body=b""):
        """Opens a channel and sends SERVICE, the body (bytes, str or an iterable of chunks) and END."""
        whole = body is None or isinstance(body, _CHUNK_TYPES)
        if not whole and not hasattr(body, "__iter__"):
            raise TypeError("body must be bytes, str or an iterable of chunks, got %s" % type(body).__name__)
        payload = self._head(service, args)
        channel = self._open_channel()
        number = channel.number
        head = (_wire.SERVICE, number, payload)
        try:
            if whole:
                chunk = _chunk(body) if body is not None else b""
                frames = (head, (_wire.CHUNK, number, chunk), (_wire.END, number, b"")) if len(chunk) else (head, (_wire.END, number, b""))
                self._send(channel, frames)
            else:
                self._send(channel, (head,))
                for item in body:
                    if not self._send(channel, ((_wire.CHUNK, number, _chunk(item)),)):
                        break
                self._send(channel, ((_wire.END, number, b""),))
        except BaseException:
            self.cancel_channel(channel, "cancelled")
            raise
        return channel

    async def request_async(self, service, args, body=b""):
        """request() with an async iterable body too."""
        if not hasattr(body, "__aiter__"):
            return self.request(service, args, body)
        payload = self._head(service, args)
        channel = self._open_channel()
        number = channel.number
        try:
            self._send(channel, ((_wire.SERVICE, number, payload),))
            async for item in body:
                if not self._send(channel, ((_wire.CHUNK, number, _chunk(item)),)):
                    break
            self._send(channel, ((_wire.END, number, b""),))
        except BaseException:
            self.cancel_channel(channel, "cancelled")
            raise
        return channel

    # Closing channels.
    def finished(self, channel):
        """The engine ended or failed the channel (reader thread)."""
        with self._lock:
            self._open.discard(channel)

    def cancel_channel(self, channel, code):
        """Cancels one channel: its waiters raise cocaine.Cancelled, the engine gets ERROR cancelled."""
        with self._lock:
            self._open.discard(channel)
        self.worker.services.pop(channel.number, None)
        with channel.send_lock:
            # The engine hears of it only if it saw the channel open.
            if channel.cancel(code) and channel.opened:
                self.worker.writer.send_one(_wire.ERROR, channel.number, _codec.dumps({"code": "cancelled", "message": "the caller cancelled the request"}))

    def close(self, why):
        """The invocation was cancelled ('cancelled', 'deadline') or finished ('finished'): cancels
        every service channel still open, so blocked handlers wake and callees stop."""
        with self._lock:
            if self._closed is None:
                self._closed = why
            channels, self._open = self._open, set()
        code = "cancelled" if why == "finished" else why
        for channel in channels:
            self.cancel_channel(channel, code)

    # Log records.
    def log(self, level, message, fields):
        record = log_record(level, message, fields)
        if not self.enabled:
            log_to_stderr(record)
            return
        with self._lock:
            # After the invocation finished, its channel is closed: the record goes on channel 0.
            channel = self.parent if self._closed is None else 0
        payload = _codec.dumps(record)
        if len(payload) > _wire.MAX_PAYLOAD:
            # One record is one frame: a message over the frame limit is cut (rare: 64 MiB).
            record = {"level": level, "message": record["message"][: 1 << 20] + " [truncated: the record was over 64 MiB]"}
            payload = _codec.dumps(record)
        self.worker.writer.send_one(_wire.LOG, channel, payload)


def log_record(level, message, fields):
    record = {"level": level, "message": message if isinstance(message, str) else str(message)}
    if fields:
        record["fields"] = {str(key): _field(value) for key, value in fields.items()}
    return record


def log_to_stderr(record):
    """Without LOG frames (a version 1 engine, a request made outside a worker) a record is a
    line on stderr, which the engine captures as the app's output."""
    line = "[%s] %s" % (record["level"], record["message"])
    fields = record.get("fields")
    if fields:
        line += " " + " ".join("%s=%s" % item for item in fields.items())
    sys.stderr.write(line + "\n")


def _field(value):
    # Fields are a flat object: scalars as they are, anything else as its str() (also a float
    # that JSON cannot carry: inf, nan).
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and value - value == 0:
        return value
    return str(value)


def _chunk(item):
    if isinstance(item, (bytes, bytearray)):
        return item
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, memoryview):
        return item.cast("B") if item.format != "B" or item.ndim != 1 else item
    raise TypeError("a body chunk must be bytes, bytearray, memoryview or str, got %s" % type(item).__name__)
