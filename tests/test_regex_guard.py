"""A pack regex, rewritten to run only on short strings, still finds what it found."""

from __future__ import annotations

import re
import time

import pytest

from rules.regex_guard import (
    MAX_REGEX_INPUT,
    UnsafeRegex,
    bound_pattern,
    bounded_regex,
    check_regex,
    pattern_regexes,
)

PATTERNS = [
    "^fat-?finger(s|ed|ing)?$",
    "ed$",
    "(?i)^MIS",
    "(?ix) ^ mis - ? typ  # a comment",
    "(?s)a.b",
    "\\bx|y\\b",
    "(?<=a)b",
    "^$",
    "[^a-z]",
]
WORDS = ["", "a", "ab", "a\nb", "fatfinger", "Fat-Fingered", "misTyped", "typed", "xy", "b", "7"]


@pytest.mark.parametrize("regex", PATTERNS)
def test_bounded_regex_finds_what_search_finds_on_short_words(regex: str) -> None:
    bounded = re.compile(bounded_regex(regex))
    for word in WORDS:
        assert bool(bounded.search(word)) == bool(re.search(regex, word)), word


def test_bounded_regex_never_matches_a_longer_word_and_fails_fast() -> None:
    bounded = re.compile(bounded_regex("a"))
    assert bounded.search("a" * MAX_REGEX_INPUT)
    assert not bounded.search("a" * (MAX_REGEX_INPUT + 1))
    cubic = re.compile(bounded_regex("\\w*\\w*\\w*z"))  # a minute on 5,000 characters
    started = time.perf_counter()
    assert not cubic.search("a" * 5000)
    assert time.perf_counter() - started < 0.1


def test_every_regex_of_a_token_pattern_is_found_and_bounded() -> None:
    token = {
        "LOWER": {"REGEX": {"IN": ["x", "y"]}},
        "_": {"ext": {"REGEX": "z"}},
        "NORM": {"FUZZY": {"REGEX": "w"}},
        "TEXT": {"IN": ["not", "regexes"]},
        "OP": "?",
    }
    assert sorted(pattern_regexes(token)) == ["w", "x", "y", "z"]
    bounded = bound_pattern(token)
    assert sorted(pattern_regexes(bounded)) == sorted(bounded_regex(r) for r in "wxyz")
    assert bounded["TEXT"] == token["TEXT"] and bounded["OP"] == "?"


@pytest.mark.parametrize(
    "regex",
    ["(a|ab)+", "(a?){10}", "a{0,5}a{0,5}", "[a-f]+[0-9a]*", "(?=\\w*\\w*)x", "(a)(?(1)b|c)"],
)
def test_refused_shapes(regex: str) -> None:
    with pytest.raises(UnsafeRegex, match="can run away"):
        check_regex(regex)
