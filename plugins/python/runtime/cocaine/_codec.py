"""JSON for the protocol's own small messages without importing `json` at start-up: `json`
pulls in `re`, several milliseconds of every worker's cold start. CPython's C accelerator
`_json` does the work; the `json` module is the fallback (other interpreters) and serves
app results (dumps_any), imported on first use."""
try:
    from _json import encode_basestring_ascii as _quote, make_scanner as _make_scanner
except ImportError:  # pragma: no cover - not CPython
    _quote = _make_scanner = None


class _Context:
    # The attributes _json.make_scanner reads (those of json.JSONDecoder).
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo = {}

    @staticmethod
    def parse_constant(name):
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _make_scanner(_Context) if _make_scanner else None


def loads(data):
    """Parses a JSON document (bytes) from the engine."""
    text = data.decode("utf-8")
    if _scan is not None:
        stripped = text.strip()
        try:
            value, end = _scan(stripped, 0)
        except StopIteration:
            raise ValueError("not a JSON document") from None
        if end != len(stripped):
            raise ValueError("extra data after the JSON document")
        return value
    import json

    return json.loads(text)


def dumps(value):
    """Encodes a dict of str/int/list-of-str values (the protocol's messages) as UTF-8 JSON."""
    if _quote is None:
        return dumps_any(value)
    return _encode(value).encode()


def _encode(value):
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value - value == 0:
        return repr(value)  # finite: repr is the shortest form that reads back, valid JSON
    if isinstance(value, dict):
        return "{" + ",".join(_quote(key) + ":" + _encode(item) for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    if value is None:
        return "null"
    return dumps_any(value).decode()


def dumps_any(value):
    import json

    return json.dumps(value).encode()
