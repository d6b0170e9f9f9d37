"""Hostile postmortems against honest ones of the same size: how much longer does the analysis
take on input built to be slow (long runs without spaces, unclosed openers, floods of tiny
words, run-on sentences)? Parse time follows the number of words (tokens), so the ratio that
says whether an input is *built* to be slow is per word; the per-character ratio and the
seconds show what a flood of tiny words costs within the word limit.

    .venv/bin/python bench/hostile.py [--shared ../shared] [--chars 60000] [--model auto]

Each hostile text is timed beside an honest text of the same length (the corpus's real
postmortems, repeated), interleaved in one run, so the ratio is machine-independent. Before
the bounds in nlp/limits.py some of these took a minute or more (24,000 "{": 64 s). Inputs
the limits refuse are timed too: a refusal must be fast. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlp import limits  # noqa: E402
from nlp.analysis import analyse  # noqa: E402

TARGET_RATIO = 2.0  # per word, a hostile text may cost at most this many times an honest one


def hostile(chars: int) -> dict[str, tuple[str, str]]:
    def fill(unit: str) -> str:
        return (unit * (chars // len(unit) + 1))[:chars]

    return {
        "run of '{'": ("markdown", fill("{")),
        "unclosed <!--": ("markdown", fill("<!--")),
        "unclosed [": ("markdown", fill("[")),
        "link openers [a](": ("markdown", fill("[a](")),
        "jira {{": ("jira", fill("{{")),
        "jira [": ("jira", fill("[")),
        "jira table cells": ("jira", fill("|[{{")),
        "tiny words 'a | '": ("markdown", fill("a | ")),
        "run-on sentence": ("markdown", fill("the deploy went out and ")),
        "one long word": ("markdown", fill("x")),
        "nested lists": ("markdown", "".join("  " * (i % 40) + "- a\n"
                                             for i in range(chars // 40))),
        "checklists": ("markdown", fill("- [ ] ")),
        "jira headings": ("jira", fill("h1. ")),
    }


def honest(shared: Path, chars: int) -> str:
    folder = shared / "corpus" / "postmortems"
    paths = sorted(folder.glob("*.md")) if folder.is_dir() else []
    paths = paths or sorted((ROOT / "examples").glob("*.md"))
    text = "\n\n".join(p.read_text(encoding="utf-8") for p in paths)
    while len(text) < chars:
        text += "\n\n" + text
    return text[:chars]


def words(source: str) -> int:
    return limits.count_words(limits.blank_long_words(source))


def timed(source: str, fmt: str, model: str) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        analyse(source, fmt=fmt, model=model)
        outcome = "analysed"
    except limits.TooLarge as refused:
        outcome = f"refused ({refused.unit})"
    return time.perf_counter() - started, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--chars", type=int, default=60_000,
                        help="size of every text (a GitHub issue body holds 65,536)")
    parser.add_argument("--model", default="auto")
    args = parser.parse_args()

    reference = honest(args.shared, args.chars)
    analyse("Warm-up.", model=args.model)
    honest_words = words(reference)
    print(f"{args.chars:,} characters each, model {args.model}; target per word: hostile <= "
          f"{TARGET_RATIO:g}x honest ({honest_words:,} words)")
    print(f"{'input':22s} {'words':>7s} {'hostile s':>9s} {'honest s':>9s} {'/char':>6s} "
          f"{'/word':>6s}  outcome")
    worst, slowest = 0.0, 0.0
    for name, (fmt, source) in hostile(args.chars).items():
        bad, outcome = timed(source, fmt, args.model)
        good, _ = timed(reference, "markdown", args.model)  # the same round: same noise
        n = words(source)
        per_word = (bad / max(n, 1)) / (good / honest_words)
        if outcome == "analysed":
            worst = max(worst, per_word)
            slowest = max(slowest, bad / good)
        print(f"{name:22s} {n:7,d} {bad:9.2f} {good:9.2f} {bad / good:6.2f} {per_word:6.2f}  "
              f"{outcome}")
    print(f"worst per-word ratio {worst:.2f} (target <= {TARGET_RATIO:g}); slowest analysed "
          f"input {slowest:.2f}x an honest text of its size (bounded by the {limits.MAX_WORDS:,}"
          "-word limit)")


if __name__ == "__main__":
    main()
