"""The worker: connects to the engine, imports the app, handshakes, then serves invocations,
each in a thread of its own (handshake concurrency 0). The main thread reads frames; a
heartbeat thread keeps the engine informed and watches for a silent engine."""
import os
import sys
import threading
import time

import _socket

import cocaine
from cocaine import _codec, _wire
from cocaine._app import load_app
from cocaine._invocation import Invocation

#: The highest protocol version this runtime speaks; it handshakes with the engine's if lower.
PROTOCOL_VERSION = 2
_WORKER_CHANNEL_BASE = _wire.WORKER_CHANNEL_BASE


def _die(message, code=1):
    sys.stderr.write("cocaine python runtime: %s\n" % message)
    sys.stderr.flush()
    _kill_own_group()
    os._exit(code)


def _group_of(pid):
    try:
        with open("/proc/%s/stat" % pid, "rb") as stat:
            data = stat.read()
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        return int(data[data.rindex(b")") + 2:].split(b" ", 3)[2])
    except (OSError, ValueError, IndexError):
        return None


def _kill_own_group():
    """SIGKILLs every other process of the worker's process group (what handlers started), so none
    outlives the worker. Only when the worker leads its group, as every isolate starts it."""
    me = os.getpid()
    try:
        if os.getpgrp() != me:
            return
    except OSError:
        return
    for _ in range(5):  # a member may fork while we look: repeat until a pass finds nobody
        found = 0
        try:
            entries = os.listdir("/proc")
        except OSError:
            return
        for entry in entries:
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid == me or _group_of(pid) != me:
                continue
            try:
                os.kill(pid, 9)
                found += 1
            except OSError:
                pass
        if not found:
            return


def _read_env():
    env = os.environ

    def required(name):
        value = env.get(name)
        if not value:
            _die("%s is not set: this program is started by the cocaine engine" % name)
        return value

    def milliseconds(name):
        raw = required(name)
        try:
            value = float(raw)
        except ValueError:
            value = -1
        if not value > 0:
            _die("%s must be a positive number of milliseconds, got '%s'" % (name, raw))
        return value / 1000.0

    protocol = required("COCAINE_PROTOCOL")
    # COCAINE_PROTOCOL is the highest version the engine speaks; every engine serves version 1.
    if not protocol.isdigit() or int(protocol) < 1:
        _die("COCAINE_PROTOCOL is %s; this runtime speaks %d" % (protocol, PROTOCOL_VERSION))
    return {
        "protocol": min(int(protocol), PROTOCOL_VERSION),
        "worker": required("COCAINE_WORKER_ID"),
        "endpoint": required("COCAINE_ENDPOINT"),
        "entrypoint": required("COCAINE_ENTRYPOINT"),
        "heartbeat": milliseconds("COCAINE_HEARTBEAT_MS"),
        "disown": milliseconds("COCAINE_DISOWN_MS"),
    }


class Worker:
    def __init__(self, sock, handlers, heartbeat, disown, protocol=PROTOCOL_VERSION):
        self.sock = sock
        self.protocol = protocol
        # Service channels the handlers opened (version 2), by number; see cocaine/_services.py.
        self.services = {}
        self._last_channel = 0
        self._channel_lock = threading.Lock()
        self.handlers = handlers
        self.writer = _wire.Writer(sock)
        self.open = {}
        self.heartbeat = heartbeat
        self.disown = disown
        self.last_heard = time.monotonic()
        # The disown clock runs once the engine has spoken: it sends nothing before it accepted
        # the handshake, and a slow engine that has not read it yet is not a dead one.
        self.spoken = False
        self._exit_lock = threading.Lock()

    def _heard(self):
        self.last_heard = time.monotonic()
        self.spoken = True

    def _unread(self):
        """Whether the engine's data (or its EOF) waits in the socket, unread by a starved reader."""
        try:
            self.sock.recv(1, _socket.MSG_PEEK | _socket.MSG_DONTWAIT)
            return True
        except BlockingIOError:
            return False
        except OSError:
            return True

    def next_channel(self):
        """A new worker channel number: 0x80000000 | k, k counting up from 1, never reused."""
        with self._channel_lock:
            k = self._last_channel + 1
            if k >= _WORKER_CHANNEL_BASE:
                raise cocaine.ServiceError("internal", "this worker opened all 2^31-1 channels it may")
            self._last_channel = k
        return _WORKER_CHANNEL_BASE | k

    def on_service_frame(self, type_, channel, payload):
        """The engine's answer on a worker channel (cocaine/_channel.py)."""
        opened = self.services.get(channel)
        if opened is None:
            return  # a finished channel: dropped
        if type_ == _wire.CHUNK:
            opened._push(payload)
        elif type_ == _wire.END:
            self.services.pop(channel, None)
            opened.services.finished(opened)
            opened._end()
        elif type_ == _wire.ERROR:
            self.services.pop(channel, None)
            opened.services.finished(opened)
            code, message = _error_of(payload)
            opened._fail(code, message)

    def serve(self):
        reader = _wire.Reader(self.sock, self._heard)
        on_invoke, open_ = self.on_invoke, self.open
        try:
            for type_, channel, payload in reader.frames():
                if channel >= _WORKER_CHANNEL_BASE:
                    self.on_service_frame(type_, channel, payload)
                elif channel == 0:
                    if type_ == _wire.TERMINATE:
                        self.exit(0)
                    # HEARTBEAT: reading it was the sign of life. Unknown control frames: ignored.
                elif type_ == _wire.CHUNK:
                    invocation = open_.get(channel)
                    if invocation is not None:
                        invocation.request._push(payload)
                elif type_ == _wire.END:
                    invocation = open_.get(channel)
                    if invocation is not None:
                        invocation.request._end()
                elif type_ == _wire.INVOKE:
                    on_invoke(channel, payload)
                elif type_ == _wire.ERROR:
                    invocation = open_.get(channel)
                    if invocation is not None:
                        invocation.cancel(_cancel_code(payload))
        except _wire.ProtocolError as error:
            _die("protocol error from the engine: %s" % error)
        except OSError as error:
            sys.stderr.write("cocaine python runtime: engine socket error: %s\n" % error)
        # No worker outlives its engine.
        self.exit(0)

    def on_invoke(self, channel, payload):
        if channel in self.open:
            return
        try:
            parsed = _codec.loads(payload)
            event = parsed["event"]
            if not isinstance(event, str):
                raise ValueError("INVOKE without an event name")
            headers = parsed.get("headers")
            if not isinstance(headers, dict):
                headers = {}
            deadline = parsed.get("deadline")
            if not isinstance(deadline, (int, float)):
                deadline = 0
        except Exception as error:
            self.send_error(channel, "protocol", "malformed INVOKE: %s" % error)
            return
        fn = self.handlers.get(event)
        if fn is None:
            self.send_error(channel, "not_found", "the app has no handler for the event '%s'" % event)
            return
        invocation = Invocation(self, channel, fn, cocaine.Request(event, headers, deadline, (self, channel)))
        self.open[channel] = invocation
        threading.Thread(target=invocation.run, name="cocaine-ch%d" % channel, daemon=True).start()

    def send_error(self, channel, code, message):
        self.writer.send_one(_wire.ERROR, channel, _codec.dumps({"code": code, "message": message}))

    def heartbeats(self):
        interval = self.heartbeat
        tick = max(0.01, min(interval, self.disown / 4, 1.0))
        next_beat = time.monotonic() + interval
        while True:
            time.sleep(tick)
            now = time.monotonic()
            if self.spoken and now - self.last_heard >= self.disown and not self._unread():
                self._exit_lock.acquire()
                _die("nothing from the engine for %d ms, exiting" % round(self.disown * 1000), 2)
            if now >= next_beat:
                next_beat = now + interval
                self.writer.send_one(_wire.HEARTBEAT, 0)

    def exit(self, code):
        # The first exit decides the code: closing the socket here makes the main thread see EOF
        # and exit(0), which must wait for this one instead of racing it.
        self._exit_lock.acquire()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        # No worker outlives its engine, nor anything it started.
        _kill_own_group()
        os._exit(code)


def _error_of(payload):
    """(code, message) of an ERROR the engine sent on a service channel."""
    try:
        parsed = _codec.loads(payload)
        code, message = parsed.get("code"), parsed.get("message")
        return (code if isinstance(code, str) and code else "internal"), (message if isinstance(message, str) else "")
    except Exception:
        return "internal", "malformed ERROR payload from the engine: %r" % bytes(payload[:200])


def _cancel_code(payload):
    try:
        code = _codec.loads(payload).get("code")
        if isinstance(code, str):
            return code
    except Exception:
        pass
    # A cancel is a cancel even with a garbled payload.
    return "cancelled"


def main():
    env = _read_env()
    # _socket, not socket: the wrapper module imports enum and selectors, a few ms of start-up.
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(env["endpoint"])
    except OSError as error:
        _die("cannot connect to the engine at %s: %s" % (env["endpoint"], error))

    # The app is imported before the handshake: a broken app fails at start, with its traceback.
    handlers = load_app(env["entrypoint"])

    worker = Worker(sock, handlers, env["heartbeat"], env["disown"], env["protocol"])
    version = sys.version_info
    handshake = {
        "protocol": env["protocol"],
        "worker": env["worker"],
        "pid": os.getpid(),
        "runtime": "python %d.%d.%d" % (version[0], version[1], version[2]),
        "concurrency": 0,
        "events": sorted(handlers),
    }
    worker.writer.send_one(_wire.HANDSHAKE, 0, _codec.dumps(handshake))
    threading.Thread(target=worker.heartbeats, name="cocaine-heartbeat", daemon=True).start()
    try:
        worker.serve()
    except KeyboardInterrupt:
        worker.exit(130)
