"""Inline suppression comments: pmguard-disable / -enable / -disable-next-line."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nlp.model import Directive
from nlp.text import Document, parse

COUNTERFACTUAL = "blame.counterfactual-modal"
HUMAN_ERROR = "blame.human-error"


def line_of(doc: Document, needle: str) -> int:
    """Source line of the first block text containing `needle`, found through the offsets."""
    for block in doc.blocks:
        at = block.text.find(needle)
        if at >= 0:
            return doc.line_col(block.starts[at])[0]
    raise AssertionError(needle)


def suppressed(doc: Document, rule: str, needle: str) -> Directive | None:
    return doc.suppression_for(rule, line_of(doc, needle))


def test_disable_enable_range_with_reason():
    doc = parse(
        "Before: Sam should have checked.\n\n"
        f"<!-- pmguard-disable {COUNTERFACTUAL} -- quoting the vendor's report verbatim -->\n"
        "Vendor: the operator should have waited.\n\n"
        "<!-- pmguard-enable -->\n\n"
        "After: Kim should have paged.\n"
    )
    assert [d.kind for d in doc.directives] == ["disable", "enable"]
    hit = suppressed(doc, COUNTERFACTUAL, "operator should")
    assert hit is not None
    assert hit.reason == "quoting the vendor's report verbatim"
    assert hit.rules == frozenset({COUNTERFACTUAL})
    assert hit.line == 3
    assert suppressed(doc, HUMAN_ERROR, "operator should") is None
    assert suppressed(doc, COUNTERFACTUAL, "Sam should") is None
    assert suppressed(doc, COUNTERFACTUAL, "Kim should") is None


def test_disable_without_ids_covers_every_rule_to_the_end():
    doc = parse("Fine.\n\n<!-- pmguard-disable -->\n\nHuman error by Sam.\n\nMore later.\n")
    assert doc.directives[0].rules == frozenset()
    assert suppressed(doc, HUMAN_ERROR, "Human error") is doc.directives[0]
    assert suppressed(doc, "anything.else", "More later") is doc.directives[0]
    assert suppressed(doc, HUMAN_ERROR, "Fine") is None


def test_enable_with_ids_reenables_only_those():
    doc = parse(
        "<!-- pmguard-disable -->\n"
        f"<!-- pmguard-enable {HUMAN_ERROR} -->\n"
        "Human error: Sam should have known.\n"
    )
    assert suppressed(doc, HUMAN_ERROR, "Human error") is None
    assert suppressed(doc, COUNTERFACTUAL, "Human error") is doc.directives[0]


def test_enable_with_ids_after_specific_disable():
    doc = parse(
        f"<!-- pmguard-disable {HUMAN_ERROR} {COUNTERFACTUAL} -->\n\n"
        "One.\n\n"
        f"<!-- pmguard-enable {HUMAN_ERROR} -->\n\n"
        "Two.\n"
    )
    assert doc.directives[0].rules == frozenset({HUMAN_ERROR, COUNTERFACTUAL})
    assert suppressed(doc, HUMAN_ERROR, "One") is doc.directives[0]
    assert suppressed(doc, HUMAN_ERROR, "Two") is None
    assert suppressed(doc, COUNTERFACTUAL, "Two") is doc.directives[0]


def test_disable_next_line_covers_next_non_blank_line_only():
    doc = parse(
        f"<!-- pmguard-disable-next-line {COUNTERFACTUAL} -- the quote is from the chat log -->\n"
        "\n"
        "Sam should have rolled back.\n"
        "Kim should have paged.\n"
    )
    directive = doc.directives[0]
    assert directive.kind == "disable-next-line"
    assert directive.applies_to_line == 3
    assert directive.reason == "the quote is from the chat log"
    assert doc.suppression_for(COUNTERFACTUAL, 3) is directive
    assert doc.suppression_for(COUNTERFACTUAL, 4) is None
    assert doc.suppression_for(HUMAN_ERROR, 3) is None


def test_stacked_next_line_directives_reach_the_same_line():
    doc = parse(
        f"<!-- pmguard-disable-next-line {COUNTERFACTUAL} -->\n"
        f"<!-- pmguard-disable-next-line {HUMAN_ERROR} -->\n"
        "Human error: Sam should have checked.\n"
    )
    assert [d.applies_to_line for d in doc.directives] == [3, 3]
    assert suppressed(doc, COUNTERFACTUAL, "Sam") is doc.directives[0]
    assert suppressed(doc, HUMAN_ERROR, "Sam") is doc.directives[1]


def test_next_line_without_ids_covers_all_rules():
    doc = parse("<!-- pmguard-disable-next-line -->\nSam should have checked.\n")
    assert suppressed(doc, "any.rule", "Sam") is doc.directives[0]


def test_inline_comments_are_directives_too():
    doc = parse(
        "Intro text <!-- pmguard-disable-next-line blame.hindsight -- hindsight is the point -->\n"
        "Obviously the cache was cold.\n"
    )
    assert " ".join(doc.blocks[0].text.split()) == "Intro text Obviously the cache was cold."
    directive = doc.directives[0]
    assert (directive.line, directive.applies_to_line) == (1, 2)
    assert suppressed(doc, "blame.hindsight", "Obviously") is directive


def test_multiline_comment_next_line_counts_from_its_end():
    doc = parse("<!-- pmguard-disable-next-line\n     blame.x blame.y\n-->\nSam did it.\n")
    directive = doc.directives[0]
    assert directive.rules == frozenset({"blame.x", "blame.y"})
    assert (directive.line, directive.applies_to_line) == (1, 4)


def test_comments_in_code_are_not_directives():
    doc = parse(
        "Use it like this:\n\n```\n<!-- pmguard-disable -->\n```\n\n"
        "or `<!-- pmguard-disable -->` inline.\n\n    <!-- pmguard-disable -->\n"
    )
    assert doc.directives == ()


def test_ordinary_comments_are_ignored_quietly():
    doc = parse("<!-- TODO: add graphs -->\nText\n")
    assert doc.directives == ()
    assert doc.warnings == ()


def test_unknown_pmguard_syntax_warns_with_line():
    doc = parse(
        "Text\n\n"
        "<!-- pmguard-disable-line blame.x -->\n\n"
        "<!-- pmguard-ignore -->\n\n"
        "<!-- pmguard-disable blame.x! -->\n\n"
        "<!-- pmguard-disable-next-line -->\n"
    )
    # Only the last one is well formed; it is kept but covers nothing.
    assert [(d.kind, d.applies_to_line) for d in doc.directives] == [("disable-next-line", 0)]
    assert len(doc.warnings) == 4
    assert doc.warnings[0].startswith("line 3: ")
    assert "pmguard-disable-line" in doc.warnings[0]
    assert doc.warnings[1].startswith("line 5: ")
    assert doc.warnings[2].startswith("line 7: ") and "blame.x!" in doc.warnings[2]
    assert doc.warnings[3].startswith("line 9: ") and "no line to cover" in doc.warnings[3]


def test_ids_may_be_comma_separated_and_reason_may_contain_dashes():
    doc = parse("<!-- pmguard-disable a.b, c_d-e -- re-run -- twice -->\nx\n")
    directive = doc.directives[0]
    assert directive.rules == frozenset({"a.b", "c_d-e"})
    assert directive.reason == "re-run -- twice"


def test_directives_survive_crlf_and_dropped_blockquotes():
    doc = parse(
        "> <!-- pmguard-disable -->\r\n\r\nSam broke it.\r\n",
        include_blockquotes=False,
    )
    assert doc.directives[0].line == 1
    assert suppressed(doc, "x", "Sam") is doc.directives[0]


def test_no_directives_outside_markdown():
    assert parse("<!-- pmguard-disable -->\nSam", "jira").directives == ()
    assert parse("<!-- pmguard-disable -->\nSam", "text").directives == ()


def test_lines_before_any_directive_and_past_the_end():
    doc = parse("a\n\n<!-- pmguard-disable -->\n")
    assert doc.suppression_for("x", 1) is None
    assert doc.suppression_for("x", 99) is doc.directives[0]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("disable"), st.sets(st.sampled_from(["r.a", "r.b"]), max_size=2)),
            st.tuples(st.just("enable"), st.sets(st.sampled_from(["r.a", "r.b"]), max_size=2)),
            st.tuples(st.just("text"), st.just(frozenset())),
        ),
        max_size=8,
    )
)
def test_property_range_state_matches_a_simple_model(events):
    """Replaying directives one line at a time agrees with suppression_for on every line."""
    lines = [
        f"<!-- pmguard-{kind} {' '.join(sorted(ids))} -->" if kind != "text" else "Sam did it."
        for kind, ids in events
    ]
    doc = parse("\n\n".join(lines) + "\n")
    model = {"r.a": False, "r.b": False}
    for index, (kind, ids) in enumerate(events):
        line = 2 * index + 1
        for rule in model:
            if (kind == "disable" and (not ids or rule in ids)) or (
                kind == "enable" and (not ids or rule in ids)
            ):
                model[rule] = kind == "disable"
        for rule, off in model.items():
            assert (doc.suppression_for(rule, line) is not None) == off, (events, line, rule)
