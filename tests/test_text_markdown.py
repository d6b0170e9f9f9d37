"""Markdown -> blocks with exact offsets back to the source."""

from __future__ import annotations

import html

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlp.text import Document, detect_format, parse
from tests.text_invariants import assert_offsets as check_offsets

# --- helpers -----------------------------------------------------------------------------

LINE_BREAKS = ("\n", "\r\n", "\r")


def _allowed_markdown(group: str, piece: str) -> bool:
    """May the text `group` stand for the differing source `piece`?"""
    if group in ("link", "code"):
        return len(piece) > 1
    if group == " " and (piece in LINE_BREAKS or piece.lower().startswith("<br")):
        return True
    if group == "\n" and piece in LINE_BREAKS:
        return True
    if piece == "\\" + group:
        return True
    return piece.startswith("&") and html.unescape(piece) == group


def assert_offsets(doc: Document, allowed=_allowed_markdown) -> None:
    check_offsets(doc, allowed)


def texts(doc: Document, kind: str | None = None) -> list[str]:
    return [b.text for b in doc.blocks if kind is None or b.kind == kind]


def source_of(doc: Document, block_index: int, needle: str) -> str:
    block = doc.blocks[block_index]
    at = block.text.index(needle)
    start, end = block.source_span(at, at + len(needle))
    return doc.source[start:end]


# --- constructs --------------------------------------------------------------------------

POSTMORTEM = """\
# Checkout outage 2024-03-07

## Summary

Payments failed for 42 minutes after the *config* push.
The on-call engineer rolled it back.

## Timeline

1. 14:02 deploy of **release 7.3** started
2. 14:10 alerts fired
   - pager went to the secondary
   - runbook link was stale

## Action items

- [ ] Add a canary stage to the deploy pipeline
- [x] Update the runbook
"""


def test_headings_give_level_and_section():
    doc = parse(POSTMORTEM)
    headings = [(b.text, b.heading_level, b.section) for b in doc.blocks if b.kind == "heading"]
    assert headings == [
        ("Checkout outage 2024-03-07", 1, ""),
        ("Summary", 2, "Checkout outage 2024-03-07"),
        ("Timeline", 2, "Summary"),
        ("Action items", 2, "Timeline"),
    ]
    para = next(b for b in doc.blocks if b.kind == "paragraph")
    assert para.section == "Summary"
    assert_offsets(doc)


def test_softbreak_becomes_space_mapped_to_the_newline():
    doc = parse(POSTMORTEM)
    para = next(b for b in doc.blocks if b.kind == "paragraph")
    assert para.text == (
        "Payments failed for 42 minutes after the config push. The on-call engineer rolled it back."
    )
    gap = para.text.index("push. ") + len("push.")
    assert doc.source[para.starts[gap] : para.ends[gap]] == "\n"


def test_lists_nest_with_depth():
    doc = parse(POSTMORTEM)
    items = [(b.text, b.list_depth, b.section) for b in doc.blocks if b.kind == "list_item"]
    assert items[:4] == [
        ("14:02 deploy of release 7.3 started", 1, "Timeline"),
        ("14:10 alerts fired", 1, "Timeline"),
        ("pager went to the secondary", 2, "Timeline"),
        ("runbook link was stale", 2, "Timeline"),
    ]


def test_checklist_items_are_checked_and_the_box_is_not_text():
    doc = parse(POSTMORTEM)
    tasks = [(b.text, b.checked) for b in doc.blocks if b.section == "Action items"]
    assert tasks == [
        ("Add a canary stage to the deploy pipeline", False),
        ("Update the runbook", True),
    ]
    plain = [b for b in doc.blocks if b.kind == "list_item" and b.section == "Timeline"]
    assert all(b.checked is None for b in plain)
    assert source_of(doc, len(doc.blocks) - 1, "Update") == "Update"


def test_loose_list_item_paragraphs_join_into_one_block():
    doc = parse("- Rollback plan\n\n  Owner: Priya\n- Second\n")
    assert texts(doc) == ["Rollback plan\nOwner: Priya", "Second"]
    assert_offsets(doc)


def test_tables_give_one_block_per_cell_with_header():
    source = (
        "Intro\n\n"
        "| Time | Event |\n"
        "|------|-------|\n"
        "| 14:02 | Deploy started |\n"
        "| 14:10 | Alert fired \\| paged |\n"
    )
    doc = parse(source)
    cells = [(b.text, b.table, b.row, b.column, b.header) for b in doc.blocks[1:]]
    assert cells == [
        ("Time", 0, 0, 0, "Time"),
        ("Event", 0, 0, 1, "Event"),
        ("14:02", 0, 1, 0, "Time"),
        ("Deploy started", 0, 1, 1, "Event"),
        ("14:10", 0, 2, 0, "Time"),
        ("Alert fired | paged", 0, 2, 1, "Event"),
    ]
    assert all(b.kind == "table_cell" for b in doc.blocks[1:])
    assert_offsets(doc)


def test_repeated_cell_text_maps_to_its_own_cell():
    doc = parse("| a | b |\n|---|---|\n| same | same |\n")
    left, right = doc.blocks[2], doc.blocks[3]
    assert left.text == right.text == "same"
    assert left.starts[0] < right.starts[0]
    assert doc.source[right.starts[0] : right.ends[-1]] == "same"


def test_second_table_gets_next_index():
    doc = parse("| a |\n|---|\n| 1 |\n\ntext\n\n| b |\n|---|\n| 2 |\n")
    assert [b.table for b in doc.blocks if b.kind == "table_cell"] == [0, 0, 1, 1]


def test_fenced_and_indented_code_is_skipped():
    source = (
        "Before\n\n```bash\nkubectl rollout undo deploy/checkout\n```\n\n"
        "    blamed_engineer = True\n\nAfter\n"
    )
    doc = parse(source)
    assert texts(doc) == ["Before", "After"]


def test_inline_code_becomes_placeholder_covering_the_span():
    doc = parse("We ran `kubectl delete pod` by hand.")
    block = doc.blocks[0]
    assert block.text == "We ran code by hand."
    assert source_of(doc, 0, "code") == "`kubectl delete pod`"
    assert_offsets(doc)


def test_double_backtick_code_with_inner_backtick():
    doc = parse("Set ``a`b`` now")
    assert doc.blocks[0].text == "Set code now"
    assert source_of(doc, 0, "code") == "``a`b``"


def test_bare_urls_and_autolinks_become_link():
    doc = parse("See https://status.example.com/incidents/42. Also <https://wiki.example.com>.")
    assert doc.blocks[0].text == "See link. Also link."
    assert source_of(doc, 0, "link") == "https://status.example.com/incidents/42"
    assert_offsets(doc)


def test_link_text_kept_url_dropped():
    doc = parse('Read the [incident runbook](https://wiki/x "Runbook") first.')
    assert doc.blocks[0].text == "Read the incident runbook first."
    assert source_of(doc, 0, "incident runbook") == "incident runbook"


def test_reference_links_and_images():
    source = "Check [the dashboard][dash] and ![graph of *errors*](errors.png) now.\n\n[dash]: https://x\n"
    doc = parse(source)
    assert doc.blocks[0].text == "Check the dashboard and  now."
    assert len(doc.blocks) == 1
    assert_offsets(doc)


def test_link_whose_text_is_a_url_is_a_placeholder():
    doc = parse("[https://grafana.example.com/d/abc](https://grafana.example.com/d/abc)")
    assert doc.blocks[0].text == "link"


def test_emphasis_markers_are_not_text():
    doc = parse("It was **_really_** ~~not~~ *obviously* wrong.")
    assert doc.blocks[0].text == "It was really not obviously wrong."
    assert source_of(doc, 0, "obviously") == "obviously"


def test_escapes_and_entities_map_onto_their_source():
    doc = parse("Costs 5 \\* 3 &amp; more &eacute;")
    block = doc.blocks[0]
    assert block.text == "Costs 5 * 3 & more é"
    assert source_of(doc, 0, "*") == "\\*"
    assert source_of(doc, 0, "&") == "&amp;"
    assert source_of(doc, 0, "é") == "&eacute;"
    assert_offsets(doc)


def test_hard_breaks_never_glue_words():
    doc = parse("first line  \nsecond line\\\nthird<br>fourth")
    assert doc.blocks[0].text == "first line second line third fourth"
    assert_offsets(doc)


def test_front_matter_is_skipped():
    doc = parse("---\ntitle: Sam broke prod\nowner: sam\n---\n\n# Outage\n")
    assert texts(doc) == ["Outage"]


def test_html_blocks_are_skipped():
    doc = parse("<details>\n<summary>raw</summary>\n</details>\n\nText\n")
    assert texts(doc) == ["Text"]


def test_blockquotes_are_quoted_or_dropped():
    source = "Our words.\n\n> The customer said Sam broke it.\n> - quoted item\n\nMore.\n"
    doc = parse(source)
    assert [(b.text, b.quoted) for b in doc.blocks] == [
        ("Our words.", False),
        ("The customer said Sam broke it.", True),
        ("quoted item", True),
        ("More.", False),
    ]
    dropped = parse(source, include_blockquotes=False)
    assert texts(dropped) == ["Our words.", "More."]


def test_lazy_blockquote_continuation():
    doc = parse("> first\nsecond\n")
    assert doc.blocks[0].text == "first second"
    assert doc.blocks[0].quoted
    assert_offsets(doc)


def test_setext_heading_and_closing_hashes():
    doc = parse("Root cause\n==========\n\n## Impact ##\n")
    assert [(b.text, b.heading_level) for b in doc.blocks] == [("Root cause", 1), ("Impact", 2)]
    assert source_of(doc, 1, "Impact") == "Impact"


def test_crlf_line_endings():
    source = "# Title\r\n\r\nLine one\r\nline two\r\n\r\n- item\r\n"
    doc = parse(source)
    assert texts(doc) == ["Title", "Line one line two", "item"]
    para = doc.blocks[1]
    gap = para.text.index(" line")
    assert doc.source[para.starts[gap] : para.ends[gap]] == "\r\n"
    assert doc.line_col(para.starts[gap + 1]) == (4, 1)
    assert_offsets(doc)


def test_unicode_names_and_emoji():
    doc = parse("# Zoë's notes 🚀\n\nJosé and Łukasz fixed 東京 região 👍🏽 quickly.")
    assert doc.blocks[1].text == "José and Łukasz fixed 東京 região 👍🏽 quickly."
    assert source_of(doc, 1, "Łukasz") == "Łukasz"
    assert doc.line_col(doc.source.index("Łukasz")) == (3, 10)
    assert_offsets(doc)


@pytest.mark.parametrize("source", ["", "   \n\n", "```\nonly code\n```\n"])
def test_empty_or_codeonly_input(source):
    doc = parse(source)
    assert doc.blocks == ()
    assert doc.format == "markdown"


def test_tabs_and_indentation_inside_lists():
    doc = parse("-\tfirst item\n\tcontinued\n")
    assert doc.blocks[0].text == "first item continued"
    assert_offsets(doc)


def test_nul_characters_do_not_break_offsets():
    doc = parse("bad\0byte here")
    assert len(doc.blocks) == 1
    assert_offsets(doc, lambda g, p: _allowed_markdown(g, p) or (g, p) == ("\ufffd", "\0"))


# --- line_col and format detection --------------------------------------------------------


def test_line_col():
    doc = parse("ab\ncd\r\nef\rgh")
    assert doc.line_col(0) == (1, 1)
    assert doc.line_col(2) == (1, 3)
    assert doc.line_col(3) == (2, 1)
    assert doc.line_col(7) == (3, 1)
    assert doc.line_col(10) == (4, 1)
    assert doc.line_col(len(doc.source)) == (4, 3)
    with pytest.raises(ValueError):
        doc.line_col(len(doc.source) + 1)


@pytest.mark.parametrize(
    ("source", "path", "expected"),
    [
        ("h1. Title\n", "pm.md", "markdown"),
        ("# Title\n", None, "markdown"),
        ('{"type": "doc", "version": 1, "content": []}', None, "adf"),
        ("{}", "export.json", "adf"),
        ("h2. Summary\n\n* item\n{code}\nx\n{code}\n", None, "jira"),
        ("||Time||Event||\n|14:02|deploy|\n", None, "jira"),
        ("{quote}\nhi\n{quote}\n", None, "jira"),
        ('{"type": "paragraph"}', None, "markdown"),
        ("plain words only", None, "markdown"),
    ],
)
def test_detect_format(source, path, expected):
    assert detect_format(source, path) == expected


def test_parse_auto_and_unknown_format():
    assert parse("h1. Outage", "auto").format == "jira"
    with pytest.raises(ValueError, match="unknown format"):
        parse("x", "rst")


def test_plain_text_format():
    doc = parse("Line one\nline two see https://x.example.com\n\nNext para", "text")
    assert texts(doc) == ["Line one line two see link", "Next para"]
    assert_offsets(doc)


# --- property tests ------------------------------------------------------------------------

WORDS = ["deploy", "rollback", "Sam", "Zoë", "José", "東京", "🚀", "alert", "should", "have"]
CODE_WORDS = ["zzcodeword", "qqsecret"]

word = st.sampled_from(WORDS)
inline = st.one_of(
    word,
    word.map(lambda w: f"*{w}*"),
    word.map(lambda w: f"**{w} {w}**"),
    word.map(lambda w: f"_{w}_"),
    word.map(lambda w: f"~~{w}~~"),
    st.sampled_from(CODE_WORDS).map(lambda w: f"`{w} x`"),
    word.map(lambda w: f"[{w} page](https://example.com/{w})"),
    st.just("https://qqhost.example.com/path?q=1"),
    st.just("<https://qqhost.example.com>"),
    st.just("\\*"),
    st.just("&amp;"),
    st.just("&#233;"),
    word.map(lambda w: f"![{w}](qqimage.png)"),
    st.just("<br>"),
    st.just("<!-- pmguard-disable -->"),
)
line = st.lists(inline, min_size=1, max_size=6).map(" ".join)
paragraph = st.lists(line, min_size=1, max_size=3).flatmap(
    lambda lines: st.sampled_from(["\n", "  \n", "\\\n"]).map(lambda br: br.join(lines))
)
heading = st.tuples(st.integers(1, 6), line, st.booleans()).map(
    lambda t: "#" * t[0] + " " + t[1] + (" " + "#" * t[0] if t[2] else "")
)
list_item = st.tuples(
    st.sampled_from(["- ", "* ", "1. ", "- [ ] ", "- [x] "]), st.integers(0, 2), line
).map(lambda t: "  " * t[1] * 2 + t[0] + t[2])
bullet_list = st.lists(list_item, min_size=1, max_size=4).map(
    lambda items: "\n".join(["- " + items[0].lstrip()] + items[1:])
)
cell = st.lists(word, min_size=0, max_size=2).map(" ".join)
table = st.tuples(
    st.integers(1, 3), st.lists(st.lists(cell, min_size=3, max_size=3), min_size=1, max_size=3)
).map(
    lambda t: "\n".join(
        ["| " + " | ".join(WORDS[: t[0]]) + " |", "|" + "---|" * t[0]]
        + ["| " + " | ".join(row[: t[0]]) + " |" for row in t[1]]
    )
)
quote = paragraph.map(lambda p: "\n".join("> " + ln for ln in p.split("\n")))
fence = st.sampled_from(CODE_WORDS).map(lambda w: f"```\n{w} Sam should have\n```")
block = st.one_of(paragraph, heading, bullet_list, table, quote, fence)
document = st.tuples(
    st.booleans(),
    st.lists(block, min_size=0, max_size=6),
    st.sampled_from(["\n", "\r\n"]),
).map(
    lambda t: (("---\ntitle: qqfront\n---\n\n" if t[0] else "") + "\n\n".join(t[1])).replace(
        "\n", t[2]
    )
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document)
def test_property_offsets_map_back_to_source(source):
    doc = parse(source)
    assert_offsets(doc)
    for b in doc.blocks:
        assert "qq" not in b.text  # URLs, code, front matter and images never leak into text
        assert "zzcodeword" not in b.text


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="ab \t\n\r*_`[]()<>!#-|>\\&;:/.x1é🚀", max_size=80))
def test_property_arbitrary_markdown_never_breaks_offsets(source):
    doc = parse(source)
    assert_offsets(doc)


def test_toml_front_matter_is_skipped_without_moving_offsets() -> None:
    source = '+++\ntitle = "Broken downloads"\nauthors = ["Jo"]\n+++\n\nThe cache broke.\n'
    doc = parse(source)
    assert [b.text for b in doc.blocks] == ["The cache broke."]
    block = doc.blocks[0]
    assert source[block.starts[0] : block.ends[-1]] == "The cache broke."
