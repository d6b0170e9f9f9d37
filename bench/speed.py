"""Speed of `analyse()` against the bare spaCy pipeline on the same texts, in both modes,
and the cold-start time of `pmguard lint` on a ~2,000-word file.

    .venv/bin/python bench/speed.py [--shared ../shared] [--rounds 3]

Both timings in a ratio come from the same run, interleaved round by round, so machine
noise hits both sides alike. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp import text as textmod  # noqa: E402
from nlp.analysis import analyse  # noqa: E402
from nlp.pipeline import get_pipeline  # noqa: E402

MODES = {"trained": "auto", "blank": "blank"}
# Issue 10: the whole trained analyse() (text extraction, rules, the classifier, action
# items) at most 1.3x the bare pipeline on the same text. The blank pipeline has no such
# target: it tokenises at ~450,000 words/s, faster than any per-sentence step.
TARGET_RATIO = 1.3
TARGET_COLD_START = 3.0


def corpus_texts(shared: Path) -> list[str]:
    folder = shared / "corpus" / "postmortems"
    paths = sorted(folder.glob("*.md")) if folder.is_dir() else []
    if not paths:
        paths = sorted((ROOT / "examples").glob("*.md"))
    return [p.read_text(encoding="utf-8") for p in paths]


def extract(texts: list[str]) -> float:
    """Markdown to blocks with offsets: input preparation, done before any NLP."""
    started = time.perf_counter()
    for t in texts:
        textmod.parse(t)
    return time.perf_counter() - started


def bare(texts: list[str], model: str) -> float:
    """The pipeline alone on exactly the block texts analyse() feeds it, batched the same
    way (one nlp.pipe call per document)."""
    nlp = get_pipeline(model).nlp
    documents = [[b.text for b in textmod.parse(t).blocks if b.text.strip()] for t in texts]
    started = time.perf_counter()
    for blocks in documents:
        for _ in nlp.pipe(blocks):
            pass
    return time.perf_counter() - started


def full(texts: list[str], model: str) -> float:
    started = time.perf_counter()
    for t in texts:
        analyse(t, model=model)
    return time.perf_counter() - started


def cold_start(words: int = 2000) -> float:
    sample = (ROOT / "examples" / "postmortem.md").read_text(encoding="utf-8")
    body = sample
    while len(body.split()) < words:
        body += "\n\n" + sample
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False, encoding="utf-8") as f:
        f.write(body)
        path = f.name
    exe = ROOT / ".venv" / "bin" / "pmguard"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cli"]
    started = time.perf_counter()
    subprocess.run([*cmd, "lint", "--format", "json", path], capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    os.unlink(path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.environ.get("PMGUARD_SHARED"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    shared = Path(args.shared or ROOT.parent / "shared")
    texts = corpus_texts(shared)
    words = sum(len(t.split()) for t in texts)
    print(f"{len(texts)} documents, {words} words, best of {args.rounds} interleaved rounds")
    for mode, model in MODES.items():
        full(texts[:2], model)  # load the pipeline and compile the pack outside the timing
        text_t, bare_t, full_t = [], [], []
        for _ in range(args.rounds):
            text_t.append(extract(texts))
            bare_t.append(bare(texts, model))
            full_t.append(full(texts, model))
        x, b, f = min(text_t), min(bare_t), min(full_t)
        rules = max(f - x - b, 0.0)
        print(
            f"  {mode:8s} analyse() {words / f:8.0f} words/s | bare spaCy {words / b:8.0f} "
            f"words/s | text extraction {x:.2f} s, pipeline {b:.2f} s, rules + suggestions + "
            f"action items {rules:.2f} s"
        )
        target = f" (target <= {TARGET_RATIO}x)" if mode == "trained" else ""
        print(
            f"           rules + classifier + suggestions + action items on top of the "
            f"pipeline: {rules / b:+.1%}; whole analyse() / bare pipeline = {f / b:.2f}x{target}"
        )
    t = cold_start()
    target = f"target < {TARGET_COLD_START} s"
    print(f"  pmguard lint, 2,000-word file, cold start: {t:.2f} s ({target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
