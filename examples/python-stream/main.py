"""Streaming both ways: generators for results, iteration over the request for bodies."""
from cocaine import handler


@handler
def count(request):
    """Streams N chunks `0\\n`, `1\\n`, ... where N is the request body (a decimal number)."""
    n = int(request.text().strip() or "0")
    for i in range(n):
        yield "%d\n" % i


@handler
def upper(request):
    """Streams the body back uppercased, each chunk as soon as it arrives."""
    for chunk in request:
        yield chunk.decode("utf-8").upper()
