"""Frames on the engine's unix socket: [u8 type][u32be channel][u32be length][payload]."""
import struct
import threading

HANDSHAKE, HEARTBEAT, TERMINATE, INVOKE, CHUNK, END, ERROR = 1, 2, 3, 4, 5, 6, 7
# Protocol version 2: a handler's service requests (worker-opened channels) and log records.
SERVICE, LOG = 8, 9
# Channels the worker opens have the high bit set; the engine's stay below it.
WORKER_CHANNEL_BASE = 0x80000000
HEADER = struct.Struct(">BII")
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 64 * 1024 * 1024

# Payloads up to this size are joined with their header (one buffer); larger ones go out as is.
INLINE_MAX = 64 * 1024
# Bytes queued behind a flush in progress above which senders wait (a fast generator cannot
# buffer more than this ahead of the socket).
HIGH_WATER = 1024 * 1024
READ_BUFFER = 256 * 1024


class ProtocolError(Exception):
    pass


class Writer:
    """Thread-safe frame writer. The first sender becomes the flusher; frames other threads send
    meanwhile are queued and go out with its next write, so concurrent senders share syscalls
    and an uncontended sender pays one sendall per batch."""

    def __init__(self, sock):
        self._sock = sock
        self._cond = threading.Condition(threading.Lock())
        self._pending = []
        self._pending_bytes = 0
        self._flushing = False
        self.broken = False

    def send(self, frames):
        """frames: a list of (type, channel, payload bytes-like)."""
        segments = []
        size = 0
        for type_, channel, payload in frames:
            length = len(payload)
            if length <= INLINE_MAX:
                segments.append(HEADER.pack(type_, channel, length) + payload if length else HEADER.pack(type_, channel, 0))
            elif length <= MAX_PAYLOAD:
                segments.append(HEADER.pack(type_, channel, length))
                segments.append(payload)
            else:
                # One frame carries at most 64 MiB: a larger chunk goes out as several CHUNK frames.
                view = memoryview(payload).cast("B")
                length = len(view)
                for offset in range(0, length, MAX_PAYLOAD):
                    piece = view[offset:offset + MAX_PAYLOAD]
                    segments.append(HEADER.pack(type_, channel, len(piece)))
                    segments.append(piece)
                    size += HEADER_SIZE
                size -= HEADER_SIZE
            size += HEADER_SIZE + length
        with self._cond:
            while self._flushing and self._pending_bytes > HIGH_WATER and not self.broken:
                self._cond.wait()
            if self.broken:
                return
            self._pending.extend(segments)
            self._pending_bytes += size
            if self._flushing:
                return
            self._flushing = True
        self._drain()

    def send_one(self, type_, channel, payload=b""):
        self.send(((type_, channel, payload),))

    def _drain(self):
        sock = self._sock
        while True:
            with self._cond:
                segments = self._pending
                if not segments or self.broken:
                    self._flushing = False
                    self._cond.notify_all()
                    return
                self._pending = []
                self._pending_bytes = 0
                self._cond.notify_all()
            try:
                small = []
                for segment in segments:
                    if len(segment) > INLINE_MAX:
                        if small:
                            sock.sendall(b"".join(small))
                            small = []
                        sock.sendall(segment)
                    else:
                        small.append(segment)
                if small:
                    sock.sendall(small[0] if len(small) == 1 else b"".join(small))
            except OSError:
                # The engine went away; the reader sees EOF and exits the process.
                with self._cond:
                    self.broken = True


class Reader:
    """Reads whole frames with recv_into: small frames from one reusable buffer, a large payload
    straight into a buffer of its own size."""

    def __init__(self, sock, on_read):
        self._sock = sock
        self._on_read = on_read
        self._buffer = bytearray(READ_BUFFER)
        self._view = memoryview(self._buffer)
        self._start = 0
        self._end = 0

    def frames(self):
        """Yields (type, channel, payload bytes); returns on EOF."""
        buffer, view, unpack = self._buffer, self._view, HEADER.unpack_from
        while True:
            start, end = self._start, self._end
            while end - start >= HEADER_SIZE:
                type_, channel, length = unpack(buffer, start)
                if length > MAX_PAYLOAD:
                    raise ProtocolError("frame payload of %d bytes exceeds the limit of %d" % (length, MAX_PAYLOAD))
                stop = start + HEADER_SIZE + length
                if stop <= end:
                    payload = bytes(view[start + HEADER_SIZE:stop]) if length else b""
                    start = stop
                    self._start = start
                    yield type_, channel, payload
                    start, end = self._start, self._end
                elif HEADER_SIZE + length > len(buffer):
                    payload = self._read_large(start, end, length)
                    if payload is None:
                        return
                    start = end = self._start = self._end = 0
                    yield type_, channel, payload
                else:
                    break
            if start == end:
                start = end = 0
            elif start > 0 and len(buffer) - end < READ_BUFFER // 4:
                buffer[0:end - start] = buffer[start:end]
                start, end = 0, end - start
            received = self._sock.recv_into(view[end:])
            if received == 0:
                return
            self._on_read()
            self._start, self._end = start, end + received

    def _read_large(self, start, end, length):
        payload = bytearray(length)
        have = end - start - HEADER_SIZE
        payload[0:have] = self._view[start + HEADER_SIZE:end]
        target = memoryview(payload)
        while have < length:
            received = self._sock.recv_into(target[have:])
            if received == 0:
                return None
            self._on_read()
            have += received
        return bytes(payload)
