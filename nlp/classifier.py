"""The trained blame classifier: for one sentence, the probability that it blames a person
and the family of blame it most resembles.

A spaCy text classifier (training/blame_classifier.cfg, rebuilt by `make model` from
training/data/ and the rule pack's examples) shipped in nlp/models/blame_classifier/. It
has its own tokenizer and a small hashed-feature tok2vec, so it reads sentence text the same
way beside the trained and the blank pipeline. Rules with `model: blame_classifier` in the
pack decide what a prediction means (nlp/blame.py): one rule per class, with its threshold,
message, severity and examples.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import spacy
from spacy.language import Language

MODEL_NAME = "blame_classifier"
MODEL_DIR = Path(__file__).resolve().parent / "models" / MODEL_NAME
OK = "OK"


@dataclass(frozen=True)
class Prediction:
    blame: float  # 1 - P(OK)
    label: str  # the most likely class other than OK
    score: float  # its probability


class BlameClassifier:
    def __init__(self, path: Path = MODEL_DIR) -> None:
        self.path = path
        self.nlp: Language = spacy.load(path)
        self.labels: tuple[str, ...] = tuple(self.nlp.get_pipe("textcat").labels)
        self.record = json.loads((path / "TRAINING.json").read_text(encoding="utf-8"))

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        out = []
        for doc in self.nlp.pipe(texts, batch_size=64):
            cats = doc.cats
            label = max((c for c in cats if c != OK), key=cats.__getitem__)
            out.append(Prediction(1.0 - cats.get(OK, 0.0), label, cats[label]))
        return out


_lock = threading.Lock()
_loaded: BlameClassifier | None = None


def available(path: Path = MODEL_DIR) -> bool:
    return (path / "TRAINING.json").is_file() and (path / "config.cfg").is_file()


def get_classifier() -> BlameClassifier:
    """The process-wide classifier, loaded on first use."""
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = BlameClassifier()
        return _loaded
