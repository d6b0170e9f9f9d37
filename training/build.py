"""Build the blame classifier that ships in nlp/models/blame_classifier/.

    make model                      # or: .venv/bin/python -m training.build

Reads the sentences the project writes and keeps (training/data/*.tsv) and every example
the shipped rule pack carries (a rule's `match` examples are blame of that rule's family,
its `no_match` ones are not), splits them by a hash of the sentence (one in ten for dev),
trains with spaCy's own trainer on training/blame_classifier.cfg, and writes the best model
with TRAINING.json: the checksums of the data and config it was built from, the counts and
the dev scores. tests/test_blame_classifier.py fails when the shipped model and the data
disagree, so a change to the data needs `make model` in the same commit.

Held-out sets (bench/data/heldout-*) are never read here: they measure the model.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from rules.schema import MODELS, load_pack

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "training" / "data"
CONFIG = ROOT / "training" / "blame_classifier.cfg"
OUT = ROOT / "nlp" / "models" / "blame_classifier"

OK = "OK"
# A family of the data (or a rule's category) -> the class the model predicts. Several
# families share a class where they are one construction seen from two sides.
CLASS_OF = {
    "agent-harm": "AGENT_HARM",
    "multi": "AGENT_HARM",
    "possessive": "POSSESSIVE",
    "blame-noun-location": "BLAME_NOUN",
    "blame-noun": "BLAME_NOUN",
    "root-cause-person": "BLAME_NOUN",
    "hindsight-normative": "HINDSIGHT",
    "hindsight": "HINDSIGHT",
    "counterfactual-person": "COUNTERFACTUAL",
    "counterfactual": "COUNTERFACTUAL",
    "if-only": "COUNTERFACTUAL",
    "negative-action": "COUNTERFACTUAL",
    "human-error": "HUMAN_ERROR",
    "judgemental": "JUDGEMENTAL",
    "mental-state": "JUDGEMENTAL",
    "accusatory-question": "JUDGEMENTAL",
    "minimiser": "MINIMISER",
    "self-blame": "SELF_BLAME",
    "heroics": "HEROICS",
    "brilliance": "HEROICS",
    "named-agent": "AGENT_HARM",
    "person-agent-error": "AGENT_HARM",
    "procedure-violation": "AGENT_HARM",
}
# The classes the pack's `model:` rules may name (rules/schema.py holds the list).
CLASSES = (OK, *MODELS["blame_classifier"])
assert set(CLASS_OF.values()) == set(CLASSES) - {OK}, "CLASS_OF and MODELS disagree"
# Rule categories whose examples are not about blame in a sentence.
SKIP_CATEGORIES = {"action-items"}


def sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def data_files() -> list[Path]:
    return sorted(DATA.glob("*.tsv"))


def fingerprint() -> dict[str, str]:
    """What the shipped model must have been built from: the sentences and labels it saw
    (data files and rule examples, so editing a rule's message needs no retraining) and the
    training config."""
    seen = "\n".join(f"{cls}\t{text}" for text, cls in sorted(examples()))
    return {
        "examples_sha256": hashlib.sha256(seen.encode()).hexdigest(),
        "config_sha256": sha256([CONFIG]),
    }


def examples() -> list[tuple[str, str]]:
    """(sentence, class) from the data files and the rule pack's examples, de-duplicated
    (the first label seen wins; the data files come first)."""
    out: dict[str, str] = {}
    for path in data_files():
        with path.open(encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                text = " ".join((row.get("sentence") or "").split())
                label = row.get("label")
                if not text or label not in ("blame", "ok"):
                    continue
                cls = OK if label == "ok" else CLASS_OF.get(row.get("family", ""))
                if cls is not None:
                    out.setdefault(text.casefold(), (text, cls))  # type: ignore[arg-type]
    for rule in load_pack(None).rules:
        if rule.category in SKIP_CATEGORIES:
            continue
        cls = CLASS_OF.get(rule.category)
        if cls is None:
            continue
        for text in rule.examples_match:
            out.setdefault(" ".join(text.split()).casefold(), (text, cls))
        for text in rule.examples_no_match:
            out.setdefault(" ".join(text.split()).casefold(), (text, OK))
    return list(out.values())  # type: ignore[arg-type]


def is_dev(text: str) -> bool:
    return hashlib.sha1(text.casefold().encode()).digest()[0] % 10 == 0


def build(out: Path = OUT, *, quiet: bool = False) -> dict:
    import spacy
    from spacy.cli.train import train
    from spacy.tokens import DocBin

    rows = examples()
    nlp = spacy.blank("en")
    bins = {"train": DocBin(), "dev": DocBin()}
    counts: dict[str, dict[str, int]] = {"train": {}, "dev": {}}
    for text, cls in rows:
        doc = nlp.make_doc(text)
        doc.cats = {c: float(c == cls) for c in CLASSES}
        split = "dev" if is_dev(text) else "train"
        bins[split].add(doc)
        counts[split][cls] = counts[split].get(cls, 0) + 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for split, docbin in bins.items():
            docbin.to_disk(work / f"{split}.spacy")
        train(
            CONFIG,
            work / "out",
            overrides={"paths.train": str(work / "train.spacy"),
                       "paths.dev": str(work / "dev.spacy")},
        )
        # The last model, not the "best" by macro F over eleven classes on a few hundred dev
        # sentences: that pick is noise, and an early, underfit checkpoint often wins it.
        best = work / "out" / "model-last"
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(best, out)
    dev = [(text, cls) for text, cls in rows if is_dev(text)]
    record = {
        **fingerprint(),
        "classes": list(CLASSES),
        "counts": counts,
        "dev_blame": binary_scores(spacy.load(out), dev),
        "spacy_version": spacy.__version__,
    }
    (out / "TRAINING.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if not quiet:
        print(f"wrote {out}: {sum(counts['train'].values())} training and "
              f"{sum(counts['dev'].values())} dev sentences")
        for threshold, scores in record["dev_blame"].items():
            print(f"  dev at P(blame) >= {threshold}: precision {scores['precision']:.3f} "
                  f"recall {scores['recall']:.3f}")
    return record


def binary_scores(nlp, dev: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Blame-or-not precision and recall on the dev split at a few thresholds: what the
    analysis uses (P(blame) = 1 - P(OK)), where macro F over the classes is not."""
    scored = [
        (1.0 - doc.cats.get(OK, 0.0), cls != OK)
        for doc, (_, cls) in zip(nlp.pipe(t for t, _ in dev), dev, strict=True)
    ]
    out = {}
    for threshold in (0.5, 0.7, 0.8, 0.9):
        tp = sum(p >= threshold and blame for p, blame in scored)
        fp = sum(p >= threshold and not blame for p, blame in scored)
        fn = sum(p < threshold and blame for p, blame in scored)
        out[str(threshold)] = {
            "precision": round(tp / (tp + fp), 4) if tp + fp else 0.0,
            "recall": round(tp / (tp + fn), 4) if tp + fn else 0.0,
        }
    return out


if __name__ == "__main__":
    build()
