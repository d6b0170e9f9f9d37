"""Bounded analysis: hostile text is read in time linear in its size, and text over the
limits is refused whole with its size and the limit (security issue, High 1, Medium 5,
Low 8). The absolute time bounds are generous (each was a minute or more before the fix);
the speed figures themselves live in bench/."""

from __future__ import annotations

import time

import pytest

from nlp import limits
from nlp.analysis import LONG_SENTENCE, TOO_MANY, analyse
from nlp.text import parse


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


# --- the tokenizer and the parser ---------------------------------------------------------


def test_a_long_run_without_spaces_is_blanked_before_the_tokenizer(model: str) -> None:
    # 24,000 "{" took 64 s: spaCy splits affixes off a run one character at a time.
    analyse("Warm-up.", model=model)  # loading the pipeline is not what is measured
    seconds, analysis = timed(analyse, "{" * 24_000, model=model)
    assert seconds < 5
    assert not [f for f in analysis.findings if f.category != "action-items"]


def test_blanking_keeps_offsets_and_short_words() -> None:
    text = "Ravi broke " + "x" * 500 + " the build."
    out = limits.blank_long_words(text)
    assert len(out) == len(text)
    assert out.startswith("Ravi broke ") and out.endswith(" the build.")
    assert max(len(w) for w in out.split()) <= limits.MAX_WORD_CHARS


def test_pieces_cover_the_text_exactly_and_stay_under_the_limit() -> None:
    text = ("The cache expired. " * 300) + ("word " * 900) + "end."
    cut = limits.pieces(text, 1000)
    assert cut[0].start == 0 and cut[-1].end == len(text)
    assert all(a.end == b.start for a, b in zip(cut, cut[1:], strict=False))
    assert all(p.end - p.start <= 1000 for p in cut)
    # Sentences give the cut points where there are sentences ...
    assert all(text[p.end - 1] == "." for p in cut[:4])
    assert not any(p.cut_mid_sentence for p in cut[:4])
    # ... and a run-on passage is cut at a space, and says so.
    assert any(p.cut_mid_sentence for p in cut)


def test_a_flag_after_a_cut_points_at_its_own_words(model: str) -> None:
    source = "The cache expired again. " * 200 + "Ravi was careless with the deploy."
    analysis = analyse(source, model=model, check_actions=False)
    [flag] = [f for f in analysis.findings if f.rule == "blame.judgemental"]
    assert source[flag.start : flag.end] == flag.text and "careless" in flag.text


def test_a_run_on_sentence_is_checked_in_parts_with_a_finding_that_says_so(model: str) -> None:
    source = "the deploy went out and " * 200 + "nobody noticed."
    analysis = analyse(source, model=model, check_actions=False)
    notes = [f for f in analysis.findings if f.rule == LONG_SENTENCE]
    assert notes and all(f.severity == "info" for f in notes)
    assert "checked in parts" in notes[0].message


# --- refused whole ------------------------------------------------------------------------


def test_a_source_over_the_size_limit_is_refused_with_size_and_limit() -> None:
    # 1.2 million characters made spaCy raise E088, and the job retried until it failed.
    with pytest.raises(limits.TooLarge) as caught:
        analyse("a " * 600_000, model="blank")
    assert caught.value.size == 1_200_000 and caught.value.limit == limits.MAX_SOURCE_CHARS
    assert "1,200,000 characters, over the limit of 200,000" in str(caught.value)


def test_a_flood_of_tiny_words_is_refused_by_count() -> None:
    with pytest.raises(limits.TooLarge, match="words, over the limit of 30,000"):
        analyse("| a " * 40_000, model="blank")


def test_flags_past_the_cap_are_summed_up_in_one_finding() -> None:
    source = "\n\n".join(["Human error caused it."] * (limits.MAX_FINDINGS + 50))
    analysis = analyse(source, model="blank", check_actions=False)
    assert len(analysis.findings) == limits.MAX_FINDINGS + 1
    assert analysis.findings[-1].rule == TOO_MANY
    assert f"of {limits.MAX_FINDINGS + 50:,}" in analysis.findings[-1].message


# --- the text readers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, source",
    [
        ("markdown", "<!--" * 50_000),  # 200 KB of unclosed comments took 57 s
        ("markdown", "<!-- a\n\n" * 25_000),
        ("jira", "{{" * 100_000),  # 200 KB of "{" took 17 s
        ("jira", "[" * 200_000),
        ("jira", "|" + "[{{" * 60_000),
    ],
    ids=["md-comments", "md-comment-blocks", "jira-monospace", "jira-links", "jira-cell"],
)
def test_text_readers_are_linear_on_unclosed_openers(fmt: str, source: str) -> None:
    seconds, _document = timed(parse, source, fmt)
    assert seconds < 3


def test_html_comments_are_still_read_as_directives() -> None:
    source = (
        "<!-- pmguard-disable-next-line blame.human-error -- quoting -->\n"
        "Human error again.\n\n<!-- unclosed"
    )
    analysis = analyse(source, model="blank", check_actions=False)
    [flag] = [f for f in analysis.findings if f.rule == "blame.human-error"]
    assert flag.suppressed and flag.justification == "quoting"
