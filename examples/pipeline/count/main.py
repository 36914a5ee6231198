"""The pipeline's second stage: per-word counts in the app's own storage.

`add` gets one line and adds 1 per word to the key `word/<word>` (and 1 to `lines`). Several
`add`s run at once (threads, and as many workers as the pool grows to), so every increment is a
compare-and-set loop: read the count and its revision, write count + 1 at that revision, and
read again when another handler got there first (`revision_mismatch`).

`top` answers JSON {"lines": L, "words": D, "top": [[word, count], ...]}: the N most frequent
words (N is the body, default 10), most frequent first, ties in alphabetical order.
"""
import json
import re

import cocaine
from cocaine import handler

WORD = re.compile(r"[a-z0-9']+")


def increment(storage, key):
    """Adds 1 to the number stored under key; returns the new number."""
    while True:
        found = storage.get(key)
        count = int(found[0]) + 1 if found else 1
        try:
            storage.put(key, str(count), revision=found[1] if found else 0)
            return count
        except cocaine.ServiceError as error:
            if error.code != "revision_mismatch":
                raise


@handler
def add(request):
    words = WORD.findall(request.text().lower())
    for word in words:
        increment(request.storage, "word/" + word)
    increment(request.storage, "lines")
    return str(len(words))


@handler
def top(request):
    limit = int(request.text() or "10")
    counts = []
    after = None
    while True:
        keys, after = request.storage.list("word/", limit=100, after=after)
        for key in keys:
            found = request.storage.get(key)
            if found:
                counts.append((key[len("word/"):], int(found[0])))
        if after is None:
            break
    counts.sort(key=lambda item: (-item[1], item[0]))
    lines = request.storage.get("lines")
    return json.dumps({"lines": int(lines[0]) if lines else 0, "words": len(counts), "top": counts[:limit]})
