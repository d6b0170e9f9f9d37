"""Is a capitalised word a given name? Read off spacy-lookups-data's word probabilities.

A word whose capitalised form is far more frequent than its lowercase form ("Sam", "Priya")
is a name; one that is common in lowercase ("Grace", "Mark", "Knight") is not trusted as
one. The full probability table takes seconds to load, so the three word sets this test
needs are derived once and kept in a small cache file.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

NAME_MARGIN = 1.0  # log-prob by which the capitalised form must beat the lowercase one
PROB_FLOOR = -19.4  # the table's floor: words seen too rarely to count
COMMON_WORD = -14.0  # a lowercase word above this is ordinary English
CACHE_ENV = "PMGUARD_CACHE_DIR"


@dataclass(frozen=True)
class NameTable:
    names: frozenset[str]  # capitalised forms that are names
    not_names: frozenset[str]  # capitalised forms the table knows and that are not names
    lower_known: frozenset[str]  # lowercase words with no capitalised entry
    common_ly: frozenset[str]  # common lowercase -ly words (sentence adverbs)

    def is_name(self, text: str) -> bool:
        """For a capitalised alphabetic word."""
        if text in self.names:
            return True
        if text in self.not_names:
            return False
        return text.lower() not in self.lower_known

    def is_sentence_adverb(self, lower: str) -> bool:
        return lower in self.common_ly


_lock = threading.Lock()
_table: NameTable | None = None


def name_table() -> NameTable:
    global _table
    with _lock:
        if _table is None:
            _table = _load()
        return _table


def _source() -> Path:
    import spacy_lookups_data

    return Path(spacy_lookups_data.__file__).parent / "data" / "en_lexeme_prob.json.gz"


def _cache_path() -> Path:
    base = os.environ.get(CACHE_ENV) or os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    version = metadata.version("spacy-lookups-data")
    return Path(base).expanduser() / "postmortem-guard" / f"names-{version}-v1.json"


def _load() -> NameTable:
    path = _cache_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return NameTable(*(frozenset(data[k]) for k in ("names", "not_names", "lower", "ly")))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    table = derive(json.loads(gzip.decompress(_source().read_bytes())))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "names": sorted(table.names),
                    "not_names": sorted(table.not_names),
                    "lower": sorted(table.lower_known),
                    "ly": sorted(table.common_ly),
                }
            ),
            encoding="utf-8",
        )
        tmp.replace(path)
    except OSError:
        pass  # a read-only home still works, it just derives the sets every run
    return table


def derive(prob: dict[str, float]) -> NameTable:
    names, not_names, lower_known, common_ly = set(), set(), set(), set()
    for word, cap in prob.items():
        if not word.isalpha():
            continue
        if word.islower():
            if cap > PROB_FLOOR and word.capitalize() not in prob:
                lower_known.add(word)
            if word.endswith("ly") and cap > COMMON_WORD:
                common_ly.add(word)
            continue
        if not word[0].isupper() or len(word) < 2 or any(c.isupper() for c in word[1:]):
            continue
        low = prob.get(word.lower())
        if low is not None and low <= PROB_FLOOR:
            low = None
        if low is None or cap - low >= NAME_MARGIN:
            names.add(word)
        else:
            not_names.add(word)
    return NameTable(
        frozenset(names), frozenset(not_names), frozenset(lower_known), frozenset(common_ly)
    )
