"""What a handler calls (plugins/python/README.md, "Services"): the arguments of each service
checked and put in the engine's terms, and the engine's answers turned into Python values. The
sync and async variants share both; they differ only in how they wait."""
import cocaine
from cocaine import _codec


# Arguments.
def _fail_type(name, expected, value):
    raise TypeError("%s must be %s, got %s" % (name, expected, type(value).__name__))


def _text(name, value, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, str):
        _fail_type(name, "a str", value)
    return value


def _headers(headers):
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        _fail_type("headers", "a dict of str to str", headers)
    for key, value in headers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("headers must be a dict of str to str, got %r: %r" % (key, value))
    return headers


def _milliseconds(name, seconds):
    """Seconds (int or float, the Python way) as the protocol's whole milliseconds, rounded up."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        _fail_type(name, "a number of seconds", seconds)
    if not 0 <= seconds < 1e12:  # also refuses nan and inf
        raise ValueError("%s must be a number of seconds >= 0, got %r" % (name, seconds))
    milliseconds = round(seconds * 1000, 6)  # 1.1 s is 1100 ms, not 1100.0000000000002
    whole = int(milliseconds)
    return whole + 1 if whole < milliseconds else whole


def _count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        _fail_type(name, "an int", value)
    if value < minimum:
        raise ValueError("%s must be >= %d, got %d" % (name, minimum, value))
    return value


def call_args(target, headers, timeout, routing_key=None, broadcast=False):
    args = {"target": _text("target", target), "headers": _headers(headers)}
    if timeout is not None:
        args["timeout_ms"] = _milliseconds("timeout", timeout)
    if routing_key is not None:
        args["routing_key"] = _text("routing_key", routing_key)
    if broadcast:
        args["broadcast"] = True
    return args


def emit_args(target, headers, delay, id):
    args = {"target": _text("target", target), "headers": _headers(headers)}
    if delay is not None:
        args["delay_ms"] = _milliseconds("delay", delay)
    if id is not None:
        args["id"] = _text("id", id)
    return args


def _value(value):
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return value
    _fail_type("value", "bytes or str", value)


# Answers.
def answer(body, what):
    """The engine's JSON answer to an emit or storage request, as a dict."""
    try:
        value = _codec.loads(body)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value
    except ValueError as error:
        raise cocaine.ServiceError("protocol", "the engine's answer to %s is not a JSON object (%s): %r" % (what, error, bytes(body[:200]))) from None


def emitted(body):
    value = answer(body, "emit")
    return {"id": value.get("id"), "duplicate": bool(value.get("duplicate", False))}


def _parse_get(body):
    value = answer(body, "storage get")
    if not value.get("found"):
        return None
    import binascii

    return binascii.a2b_base64(value.get("value") or ""), value.get("revision")


def _parse_put(body):
    return answer(body, "storage put").get("revision")


def _parse_delete(body):
    return bool(answer(body, "storage delete").get("deleted"))


def _parse_list(body):
    value = answer(body, "storage list")
    return list(value.get("keys") or ()), value.get("next")


class Storage:
    """The app's own key-value store: `request.storage`. Every method has an `_async` twin for
    `async def` handlers."""

    __slots__ = ("_services",)

    def __init__(self, services):
        self._services = services

    # Each method is (args, body, parse); _sync and _async run it.
    def _sync(self, args, body, parse):
        return parse(self._services.request("storage", args, body).read_all())

    async def _async(self, args, body, parse):
        channel = await self._services.request_async("storage", args, body)
        return parse(await channel.read_all_async())

    @staticmethod
    def _get(key):
        return {"method": "get", "key": _text("key", key)}, b"", _parse_get

    @staticmethod
    def _put(key, value, revision):
        args = {"method": "put", "key": _text("key", key)}
        if revision is not None:
            args["revision"] = _count("revision", revision, 0)
        return args, _value(value), _parse_put

    @staticmethod
    def _delete(key, revision):
        args = {"method": "delete", "key": _text("key", key)}
        if revision is not None:
            args["revision"] = _count("revision", revision, 0)
        return args, b"", _parse_delete

    @staticmethod
    def _list(prefix, limit, after):
        args = {"method": "list", "prefix": _text("prefix", prefix)}
        if limit is not None:
            args["limit"] = _count("limit", limit, 1)
        if after is not None:
            args["after"] = _text("after", after)
        return args, b"", _parse_list

    def get(self, key):
        """(value bytes, revision), or None when the key does not exist."""
        return self._sync(*self._get(key))

    def put(self, key, value, revision=None):
        """Stores value (bytes or str); returns the new revision. With `revision`, only if the key
        is at that revision (0: only if it does not exist), else ServiceError revision_mismatch."""
        return self._sync(*self._put(key, value, revision))

    def delete(self, key, revision=None):
        """Whether the key existed (and was deleted); `revision` as for put()."""
        return self._sync(*self._delete(key, revision))

    def list(self, prefix="", limit=None, after=None):
        """(keys, next): keys starting with prefix, in order, after the key `after`; `next` is the
        cursor for the next page (pass it as `after`), None on the last page."""
        return self._sync(*self._list(prefix, limit, after))

    async def get_async(self, key):
        return await self._async(*self._get(key))

    async def put_async(self, key, value, revision=None):
        return await self._async(*self._put(key, value, revision))

    async def delete_async(self, key, revision=None):
        return await self._async(*self._delete(key, revision))

    async def list_async(self, prefix="", limit=None, after=None):
        return await self._async(*self._list(prefix, limit, after))


class Log:
    """Structured log records of the invocation: `request.log.info("message", key=value)`.
    Without services (a Request made outside a worker, e.g. in an app's unit test) records are
    lines on stderr."""

    __slots__ = ("_log",)

    def __init__(self, services):
        if services is not None:
            self._log = services.log
        else:
            from cocaine._services import log_record, log_to_stderr

            self._log = lambda level, message, fields: log_to_stderr(log_record(level, message, fields))

    def debug(self, message, **fields):
        self._log("debug", message, fields)

    def info(self, message, **fields):
        self._log("info", message, fields)

    def warn(self, message, **fields):
        self._log("warn", message, fields)

    warning = warn

    def error(self, message, **fields):
        self._log("error", message, fields)


class CallResult:
    """The callee's result of `request.call()`: iterate for its chunks as they arrive, or read it
    whole with body()/text()/json(). A failure of the callee raises cocaine.ServiceError."""

    __slots__ = ("_channel",)

    def __init__(self, channel):
        self._channel = channel

    def __iter__(self):
        channel = self._channel
        while True:
            chunk = channel.next_chunk()
            if chunk is None:
                return
            yield chunk

    def body(self):
        """The rest of the result (bytes), once the callee ended it."""
        return self._channel.read_all()

    def text(self, encoding="utf-8"):
        return self.body().decode(encoding)

    def json(self):
        import json

        return json.loads(self.body())

    def cancel(self):
        """Stops the call: the callee is cancelled; reading the result raises cocaine.Cancelled."""
        self._channel.services.cancel_channel(self._channel, "cancelled")


class AsyncCallResult:
    """The callee's result of `await request.call_async()`: `async for chunk in result`, or
    `await result.body()` / `.text()` / `.json()`."""

    __slots__ = ("_channel",)

    def __init__(self, channel):
        self._channel = channel

    def __aiter__(self):
        return self._chunks()

    async def _chunks(self):
        channel = self._channel
        while True:
            chunk = await channel.next_chunk_async()
            if chunk is None:
                return
            yield chunk

    async def body(self):
        return await self._channel.read_all_async()

    async def text(self, encoding="utf-8"):
        return (await self.body()).decode(encoding)

    async def json(self):
        import json

        return json.loads(await self.body())

    def cancel(self):
        self._channel.services.cancel_channel(self._channel, "cancelled")
