"""The text module's core promise, checked the same way for every input format: every
character of every block maps back onto exactly the source it came from."""

from __future__ import annotations

from collections.abc import Callable

from nlp.text import Document


def assert_offsets(doc: Document, allowed: Callable[[str, str], bool]) -> None:
    """The module's core promise: every character maps back onto what it came from."""
    src = doc.source
    for block in doc.blocks:
        text = block.text
        assert len(text) == len(block.starts) == len(block.ends)
        previous = 0
        for i in range(len(text)):
            start, end = block.starts[i], block.ends[i]
            assert 0 <= start < end <= len(src), (block, i)
            assert start >= previous, (block, i)
            previous = start
        i = 0
        while i < len(text):
            j = i
            span = (block.starts[i], block.ends[i])
            while j + 1 < len(text) and (block.starts[j + 1], block.ends[j + 1]) == span:
                j += 1
            group, piece = text[i : j + 1], src[span[0] : span[1]]
            if group != piece:
                assert allowed(group, piece), (group, piece, block)
            i = j + 1
