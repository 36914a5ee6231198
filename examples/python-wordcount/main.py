"""Counts words and lines of a body streamed in chunks of any size, without holding it whole."""
from cocaine import handler


@handler
def wordcount(request):
    words = 0
    lines = 0
    # A word split across chunks is counted once, in the chunk where it starts.
    in_word = False
    for chunk in request:
        lines += chunk.count(b"\n")
        for piece_index, _ in enumerate(chunk.split()):
            if piece_index == 0 and in_word and not chunk[:1].isspace():
                continue  # the rest of the word the previous chunk ended in
            words += 1
        if chunk:
            in_word = not chunk[-1:].isspace()
    return {"words": words, "lines": lines}
