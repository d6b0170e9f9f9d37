"""Regular expressions a rule pack may carry: what shape is refused, and how one is run.

Python's `re` backtracks, so a pattern that can match the same text in many ways takes time
exponential (or a high power) in the length of the word it fails on. A pack's REGEX runs on
every token of every postmortem, so one bad pattern freezes a worker. Two defences:

* `check_regex` reads the pattern's parse tree (`re._parser`) and refuses the shapes that
  backtrack: a variable repeat inside a repeat, alternatives of a repeated group that can
  begin alike (or be empty), two variable repeats in a row (optional items between them
  included) whose characters overlap, and backreferences. It errs towards refusing: a
  refused pattern can always be written another way, a frozen worker cannot be undone.
* `bounded_regex` rewrites a pattern so that it fails at once on a string longer than
  `MAX_REGEX_INPUT` characters, whatever else it says: even a sound pattern is quadratic
  in the length of the word it searches, and a token can be a 5,000-character line of
  base64.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

try:  # Python 3.11 moved the parser; `sre_parse` still works but warns.
    import re._constants as sre_constants
    import re._parser as sre_parse
except ImportError:  # pragma: no cover - Python before 3.11
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

MAX_REGEX = 300  # characters in one pack regex
MAX_REGEX_INPUT = 100  # characters of a token a pack regex ever sees; longer never matches

_C = sre_constants
_REPEATS = {_C.MAX_REPEAT, _C.MIN_REPEAT, getattr(_C, "POSSESSIVE_REPEAT", _C.MAX_REPEAT)}
_ZERO_WIDTH = {_C.AT, _C.ASSERT, _C.ASSERT_NOT}
_CATEGORY = {
    _C.CATEGORY_DIGIT: r"\d",
    _C.CATEGORY_NOT_DIGIT: r"\D",
    _C.CATEGORY_SPACE: r"\s",
    _C.CATEGORY_NOT_SPACE: r"\S",
    _C.CATEGORY_WORD: r"\w",
    _C.CATEGORY_NOT_WORD: r"\W",
}
# Characters that stand for the classes a pattern can name, so that two character sets
# which share any character share one of these (plus the pattern's own literals and range
# ends, added per pattern): ASCII and Latin-1, and a few from scripts, digits and spaces
# beyond it.
_SAMPLES = frozenset(range(256)) | frozenset(
    map(ord, "ſKÅéßǅЖж中٣\u00a0\u2028\u3000\U0001d7d8")
)


class UnsafeRegex(ValueError):
    """A pack regex that is refused; the message says why, without naming where."""


def check_regex(regex: str) -> None:
    """Raise UnsafeRegex when `regex` is too long, does not compile, or can backtrack."""
    if len(regex) > MAX_REGEX:
        raise UnsafeRegex(f"is over {MAX_REGEX} characters")
    try:
        re.compile(regex)
        parsed = sre_parse.parse(regex)
    except re.error as exc:
        raise UnsafeRegex(f"does not compile: {exc}") from None
    except RecursionError:
        raise UnsafeRegex("nests groups too deeply") from None
    universe = set(_SAMPLES)
    for c in regex:
        universe.update(map(ord, {c, c.lower(), c.upper()}))
    _Checker(regex, frozenset(universe)).sequence(list(parsed), in_loop=False)


@dataclass
class _Info:
    """What a piece of a pattern can do, as far as backtracking goes."""

    nullable: bool = True  # can match the empty string
    variable: bool = False  # holds a repeat whose count is not fixed
    starts: frozenset[int] = frozenset()  # characters a match can begin with
    chars: frozenset[int] = frozenset()  # characters it can consume anywhere
    # Character sets of the variable repeats a match can begin (end) with.
    first_repeats: list[frozenset[int]] = field(default_factory=list)
    last_repeats: list[frozenset[int]] = field(default_factory=list)


class _Checker:
    def __init__(self, regex: str, universe: frozenset[int]) -> None:
        self.regex = regex
        self.universe = universe

    def refuse(self, why: str) -> UnsafeRegex:
        return UnsafeRegex(f"{self.regex!r} can run away on a long word: it {why}")

    def sequence(self, items: list, *, in_loop: bool) -> _Info:
        out = _Info()
        # Variable repeats that the next item directly follows (only optional items between):
        # if their characters overlap, the text between them can be split in many ways.
        open_repeats: list[frozenset[int]] = []
        for op, av in items:
            info = self.item(op, av, in_loop=in_loop)
            for before in open_repeats:
                if any(before & after for after in info.first_repeats):
                    raise self.refuse(
                        "has two repeats in a row that can match the same characters "
                        "(like \\w*\\w* or \\d+\\w+); make them exclusive"
                    )
            if out.nullable:
                out.starts |= info.starts
                out.first_repeats += info.first_repeats
            if info.nullable:
                open_repeats = open_repeats + info.last_repeats
                out.last_repeats = out.last_repeats + info.last_repeats
            else:
                open_repeats = list(info.last_repeats)
                out.last_repeats = list(info.last_repeats)
            out.nullable = out.nullable and info.nullable
            out.variable = out.variable or info.variable
            out.chars |= info.chars
        return out

    def item(self, op: Any, av: Any, *, in_loop: bool) -> _Info:
        if op in (_C.GROUPREF, _C.GROUPREF_EXISTS):
            raise self.refuse("uses a backreference; match the words themselves instead")
        if op in _ZERO_WIDTH:
            if op != _C.AT:
                self.sequence(list(av[1]), in_loop=False)  # a lookaround is a pattern too
            return _Info()
        if op in _REPEATS:
            low, high, body = av
            repeated = high > 1
            inner = self.sequence(list(body), in_loop=in_loop or repeated)
            if repeated and inner.variable:
                raise self.refuse(
                    "repeats a group that itself holds a repeat (like (a+)+ or (\\w+\\s?)*); "
                    "rewrite it without the nested repetition"
                )
            if repeated and inner.nullable:
                raise self.refuse("repeats something that can match nothing")
            variable = low != high
            info = _Info(
                nullable=low == 0 or inner.nullable,
                variable=variable or inner.variable,
                starts=inner.starts,
                chars=inner.chars,
            )
            if variable:
                info.first_repeats = [inner.chars]
                info.last_repeats = [inner.chars]
            else:
                info.first_repeats = inner.first_repeats
                info.last_repeats = inner.last_repeats
            return info
        if op == _C.SUBPATTERN:
            return self.sequence(list(av[-1]), in_loop=in_loop)
        if op == getattr(_C, "ATOMIC_GROUP", None):
            return self.sequence(list(av), in_loop=in_loop)
        if op == _C.BRANCH:
            branches = [self.sequence(list(b), in_loop=in_loop) for b in av[1]]
            if in_loop:
                self._exclusive(branches)
            info = _Info(nullable=any(b.nullable for b in branches))
            for b in branches:
                info.variable = info.variable or b.variable
                info.starts |= b.starts
                info.chars |= b.chars
                info.first_repeats += b.first_repeats
                info.last_repeats += b.last_repeats
            return info
        chars = self.charset(op, av)
        return _Info(nullable=False, starts=chars, chars=chars)

    def _exclusive(self, branches: list[_Info]) -> None:
        """Alternatives inside a repeat must be told apart by their first character."""
        seen: frozenset[int] = frozenset()
        for b in branches:
            if b.nullable or seen & b.starts:
                raise self.refuse(
                    "repeats alternatives that can match the same text (like (a|a)* or "
                    "(a|ab)+); make each alternative begin differently"
                )
            seen |= b.starts

    def charset(self, op: Any, av: Any) -> frozenset[int]:
        """The sample characters one character-matching item accepts, either case (a
        pattern may run case-blind, and a larger set only refuses more)."""
        if op == _C.ANY:
            return self.universe
        if op in (_C.LITERAL, _C.NOT_LITERAL):
            same = _cases(av)
            return self.universe - same if op == _C.NOT_LITERAL else same & self.universe
        if op == _C.IN:
            negate = False
            chars: set[int] = set()
            for kind, value in av:
                if kind == _C.NEGATE:
                    negate = True
                elif kind == _C.LITERAL:
                    chars |= _cases(value)
                elif kind == _C.RANGE:
                    low, high = value
                    chars |= {
                        u for u in self.universe if any(low <= c <= high for c in _cases(u))
                    }
                elif kind == _C.CATEGORY:
                    test = re.compile(_CATEGORY[value])
                    chars |= {u for u in self.universe if test.match(chr(u))}
                else:  # an item this guard does not know: assume it takes anything
                    return self.universe
            found = frozenset(chars) & self.universe
            return self.universe - found if negate else found
        return self.universe  # unknown items are assumed to match anything


def _cases(code: int) -> frozenset[int]:
    c = chr(code)
    return frozenset(ord(x) for x in (c, c.lower(), c.upper(), c.casefold()) if len(x) == 1)


# --- running a pack regex ---------------------------------------------------------------

_FLAGS = (
    (re.ASCII, "a"),
    (re.IGNORECASE, "i"),
    (re.MULTILINE, "m"),
    (re.DOTALL, "s"),
    (re.VERBOSE, "x"),
)
_LEADING_FLAGS = re.compile(r"\A(?:\(\?[aiLmsux]+\))+")


def bounded_regex(regex: str, limit: int = MAX_REGEX_INPUT) -> str:
    """`regex` rewritten to match what it matched (spaCy and the engine call `search`)
    on strings of at most `limit` characters, and nothing longer.

    The length test is a lookahead at the start of the string: it reads at most
    `limit` + 1 characters and fails before the pattern itself is tried at any position.
    `[\\s\\S]*?` then stands for search's moving start. Inline global flags must open an
    expression, so they are lifted in front of the guard."""
    flags = re.compile(regex).flags
    lifted = "".join(letter for flag, letter in _FLAGS if flags & flag)
    body = _LEADING_FLAGS.sub("", regex)
    end = "\n)" if flags & re.VERBOSE else ")"  # a trailing "# comment" must not eat the ")"
    prefix = f"(?{lifted})" if lifted else ""
    return f"{prefix}\\A(?=[\\s\\S]{{0,{limit}}}\\Z)[\\s\\S]*?(?:{body}{end}"


def pattern_regexes(value: Any, *, in_regex: bool = False) -> Iterator[str]:
    """Every regex in one token pattern (a mapping): `{ATTR: {REGEX: r}}`, lists under
    `{REGEX: {IN: [...]}}`, and the same inside `_` extension attributes or `FUZZY`."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from pattern_regexes(
                item, in_regex=in_regex or (isinstance(key, str) and key.upper() == "REGEX")
            )
    elif isinstance(value, list) and in_regex:
        for item in value:
            yield from pattern_regexes(item, in_regex=True)
    elif isinstance(value, str) and in_regex:
        yield value


def bound_pattern(value: Any, *, in_regex: bool = False, limit: int = MAX_REGEX_INPUT) -> Any:
    """A copy of a token pattern with every regex rewritten by `bounded_regex`."""
    if isinstance(value, dict):
        return {
            key: bound_pattern(
                item,
                in_regex=in_regex or (isinstance(key, str) and key.upper() == "REGEX"),
                limit=limit,
            )
            for key, item in value.items()
        }
    if isinstance(value, list) and in_regex:
        return [bound_pattern(item, in_regex=True, limit=limit) for item in value]
    if isinstance(value, str) and in_regex:
        return bounded_regex(value, limit)
    return value
