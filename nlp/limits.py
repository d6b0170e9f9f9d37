"""The bounds that keep one postmortem's analysis linear in its size.

spaCy's tokenizer splits affixes off a whitespace-free run one character at a time, which is
quadratic in the run's length (24,000 `{` took a minute), and a parser fed one enormous
"sentence" does work nobody reads. These limits cut the text into pieces the pipeline handles
in time proportional to their length; documents over the size limit are refused whole,
with the size and the limit, rather than checked in part.

Every limit sits well above real writing: the largest of the 38 real postmortems in the
corpus is 15.5 KB, the longest real sentence is a few hundred characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# A whole postmortem's source (markdown, Jira markup, ADF JSON). GitHub caps an issue body at
# 65,536 characters; a Confluence page may be longer, but not 13 times the longest real one.
MAX_SOURCE_CHARS = 200_000
# Words and punctuation marks the pipeline may read in one postmortem: parse time grows with
# them, and a flood of one-character tokens ("| a | a …") packs many into few characters.
# A 15 KB postmortem has about 3,000.
MAX_WORDS = 30_000
# Flags kept per postmortem: past this many, a reader learns nothing more from each one, and
# the review page and the store would grow with an attacker's input.
MAX_FINDINGS = 1_000
# No English word or identifier is longer; runs beyond it are hashes, data or an attack, and
# are blanked (same length, so offsets hold) before the tokenizer sees them.
MAX_WORD_CHARS = 100
# The pipeline reads a block in pieces of at most this many characters, cut after a sentence
# end where one is near, so no parse (and no sentence) is longer.
MAX_PIECE_CHARS = 2_000

_LONG_RUN = re.compile(rf"\S{{{MAX_WORD_CHARS + 1},}}")
# A sentence ends at terminal punctuation, a line break, or a blanked run (no sentence goes
# on through a hundred spaces).
_SENTENCE_END = re.compile(rf"[.!?;:](?=[\s\"')\]]|$)|\n| {{{MAX_WORD_CHARS + 1},}}")
_SPACE = re.compile(r"\s")


class Unchecked(Exception):
    """A postmortem the analysis refused or gave up on; the message says why, for people."""


class TooLarge(Unchecked, ValueError):
    """The text is over a size limit; nothing of it was analysed."""

    def __init__(self, size: int, limit: int, unit: str = "characters") -> None:
        super().__init__(f"too large to check: {size:,} {unit}, over the limit of {limit:,}")
        self.size = size
        self.limit = limit
        self.unit = unit

    def __reduce__(self) -> tuple:  # rebuilt from its fields when it crosses processes
        return (type(self), (self.size, self.limit, self.unit))


class TookTooLong(Unchecked):
    """The analysis ran past its time budget and was stopped."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"took too long to check: stopped after {seconds:g} seconds")
        self.seconds = seconds

    def __reduce__(self) -> tuple:
        return (type(self), (self.seconds,))


class Crashed(Unchecked):
    """The process analysing the text ended without an answer (killed, out of memory)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"could not be checked: the analysis stopped ({detail})")
        self.detail = detail

    def __reduce__(self) -> tuple:
        return (type(self), (self.detail,))


def check_size(source: str, limit: int = MAX_SOURCE_CHARS) -> None:
    if len(source) > limit:
        raise TooLarge(len(source), limit)


_WORD = re.compile(r"\w+|[^\w\s]")


def count_words(text: str) -> int:
    """Words and punctuation marks: about the tokens the pipeline will make of `text`."""
    return sum(1 for _ in _WORD.finditer(text))


def check_words(texts: Iterable[str], limit: int = MAX_WORDS) -> None:
    # Bounded by the character limit already, so counting everything stays cheap.
    count = sum(count_words(text) for text in texts)
    if count > limit:
        raise TooLarge(count, limit, "words")


def blank_long_words(text: str) -> str:
    """`text` with every whitespace-free run over MAX_WORD_CHARS replaced by as many spaces."""
    if len(text) <= MAX_WORD_CHARS:
        return text
    return _LONG_RUN.sub(lambda m: " " * len(m.group(0)), text)


@dataclass(frozen=True)
class Piece:
    start: int  # offsets into the block text
    end: int
    cut_mid_sentence: bool  # no sentence end was near the limit: a sentence spans two pieces


def pieces(text: str, limit: int = MAX_PIECE_CHARS) -> list[Piece]:
    """Cover `text` with consecutive pieces of at most `limit` characters.

    A cut goes after the last sentence end in the second half of the window, else at the last
    whitespace there, else at the limit; each choice looks only inside the window, so the
    whole is linear in the text's length.
    """
    out: list[Piece] = []
    start, n = 0, len(text)
    while n - start > limit:
        window = text[start : start + limit]
        half = limit // 2
        cut = -1
        for m in _SENTENCE_END.finditer(window, half):
            cut = m.end()
        mid_sentence = cut < 0
        if cut < 0:
            for m in _SPACE.finditer(window, half):
                cut = m.end()
        if cut <= 0:
            cut = limit
        out.append(Piece(start, start + cut, mid_sentence))
        start += cut
    out.append(Piece(start, n, False))
    return out
