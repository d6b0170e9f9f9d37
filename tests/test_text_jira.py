"""Jira wiki markup -> blocks with exact offsets back to the source."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlp.text import Document, parse
from tests.text_invariants import assert_offsets as check_offsets

JIRA_ESCAPABLE = set("*_-+^~?{}[]|!#\\")


def _allowed_jira(group: str, piece: str) -> bool:
    """May the text `group` stand for the differing source `piece`?"""
    if group in ("link", "code"):
        return len(piece) > 1
    if group == " ":
        return piece in ("\n", "\r\n", "\r", "\\\\")
    if group.startswith("@"):
        return piece.startswith("[~") and piece.endswith("]")
    return len(group) == 1 and piece == "\\" + group and group in JIRA_ESCAPABLE


def assert_offsets(doc: Document) -> None:
    check_offsets(doc, _allowed_jira)


def jira(source: str, **kwargs) -> Document:
    doc = parse(source, "jira", **kwargs)
    assert doc.format == "jira"
    assert doc.directives == ()
    assert_offsets(doc)
    return doc


def texts(doc: Document) -> list[str]:
    return [b.text for b in doc.blocks]


def source_of(doc: Document, block_index: int, needle: str) -> str:
    block = doc.blocks[block_index]
    at = block.text.index(needle)
    start, end = block.source_span(at, at + len(needle))
    return doc.source[start:end]


def test_headings_and_sections():
    doc = jira("h1. Payment outage\n\nh3. What happened\nThe queue backed up.\n")
    assert [(b.kind, b.text, b.heading_level, b.section) for b in doc.blocks] == [
        ("heading", "Payment outage", 1, ""),
        ("heading", "What happened", 3, "Payment outage"),
        ("paragraph", "The queue backed up.", 0, "What happened"),
    ]


def test_paragraph_lines_join_with_space_mapped_to_newline():
    doc = jira("The deploy started\nat 14:02.\n\nSecond paragraph.")
    assert texts(doc) == ["The deploy started at 14:02.", "Second paragraph."]
    gap = doc.blocks[0].text.index(" at")
    assert doc.source[doc.blocks[0].starts[gap] : doc.blocks[0].ends[gap]] == "\n"


def test_emphasis_markers_stripped():
    doc = jira("It was *obviously* _simply_ -wrong- +now+ ??cited?? ^up^ ~down~ done.")
    assert texts(doc) == ["It was obviously simply wrong now cited up down done."]
    assert source_of(doc, 0, "obviously") == "obviously"


def test_markers_inside_words_and_dates_are_text():
    doc = jira("on-call re-run 2024-03-07 snake_case_name 5*3*2 a - b C++")
    assert texts(doc) == ["on-call re-run 2024-03-07 snake_case_name 5*3*2 a - b C++"]


def test_monospace_becomes_code_placeholder():
    doc = jira("We ran {{kubectl rollout undo}} twice.")
    assert texts(doc) == ["We ran code twice."]
    assert source_of(doc, 0, "code") == "{{kubectl rollout undo}}"


def test_code_and_noformat_blocks_skipped():
    source = (
        "Before\n{code:java}\nSam.blame();\n{code}\nMiddle\n"
        "{noformat}\nSam should have\n{noformat}\nAfter {code}inline{code} end\n"
    )
    assert texts(jira(source)) == ["Before", "Middle", "After", "end"]


def test_unclosed_code_block_runs_to_the_end():
    assert texts(jira("Before\n{code}\nSam broke it\n")) == ["Before"]


def test_links_mentions_and_urls():
    source = (
        "Per [the runbook|https://wiki.example.com/rb|tip] and [https://status.example.com] "
        "[~sam.lee] paged [~accountid:5b10ac8d82e05b22cc7d4ef5] see https://grafana.example.com/d/1."
    )
    doc = jira(source)
    assert texts(doc) == [
        "Per the runbook and link @sam.lee paged @5b10ac8d82e05b22cc7d4ef5 see link."
    ]
    assert source_of(doc, 0, "@sam.lee") == "[~sam.lee]"
    assert source_of(doc, 0, "the runbook") == "the runbook"
    assert source_of(doc, 0, "link.")[:-1] == "https://grafana.example.com/d/1"


def test_plain_brackets_and_attachments():
    doc = jira("Step [1] failed, see [^trace.log] and !graph.png|thumbnail! now!")
    assert texts(doc) == ["Step [1] failed, see link and  now!"]


def test_color_and_escapes():
    doc = jira("{color:red}Sev 1{color} costs \\*5\\* line\\\\break")
    assert texts(doc) == ["Sev 1 costs *5* line break"]
    assert source_of(doc, 0, "*") == "\\*"


def test_lists_with_depth():
    doc = jira("* first\n** nested\n# one\n#* mixed\n- dash\n*not a list*\n")
    assert [(b.kind, b.text, b.list_depth) for b in doc.blocks] == [
        ("list_item", "first", 1),
        ("list_item", "nested", 2),
        ("list_item", "one", 1),
        ("list_item", "mixed", 2),
        ("list_item", "dash", 1),
        ("paragraph", "not a list", 0),
    ]


def test_tables_with_header_row():
    source = (
        "Timeline:\n||Time||Event||\n|14:02|Deploy [started|http://x]|\n|14:10|Alert \\| fired|\n"
    )
    doc = jira(source)
    cells = [(b.text, b.table, b.row, b.column, b.header) for b in doc.blocks if b.table >= 0]
    assert cells == [
        ("Time", 0, 0, 0, "Time"),
        ("Event", 0, 0, 1, "Event"),
        ("14:02", 0, 1, 0, "Time"),
        ("Deploy started", 0, 1, 1, "Event"),
        ("14:10", 0, 2, 0, "Time"),
        ("Alert | fired", 0, 2, 1, "Event"),
    ]


def test_two_tables_get_two_indexes():
    doc = jira("|a|\n\n|b|\n")
    assert [(b.text, b.table, b.row, b.header) for b in doc.blocks] == [
        ("a", 0, 0, ""),
        ("b", 1, 0, ""),
    ]


def test_quotes_are_quoted_or_dropped():
    source = "Ours.\n{quote}\nThe customer said Sam broke it.\n{quote}\nbq. One line quote.\nMore."
    doc = jira(source)
    assert [(b.text, b.quoted) for b in doc.blocks] == [
        ("Ours.", False),
        ("The customer said Sam broke it.", True),
        ("One line quote.", True),
        ("More.", False),
    ]
    assert texts(jira(source, include_blockquotes=False)) == ["Ours.", "More."]


def test_inline_quote_tags():
    doc = jira("{quote}They said it was fine.{quote} We disagreed.")
    assert [(b.text, b.quoted) for b in doc.blocks] == [
        ("They said it was fine.", True),
        ("We disagreed.", False),
    ]


def test_panel_contents_analysed():
    doc = jira("{panel:title=Impact|borderStyle=solid}\nCheckout was down.\n{panel}\n")
    assert texts(doc) == ["Checkout was down."]


def test_crlf_and_unicode():
    doc = jira("h2. Zoë's timeline 🚀\r\nJosé *restarted* it\r\nat 14:02.\r\n")
    assert texts(doc) == ["Zoë's timeline 🚀", "José restarted it at 14:02."]
    gap = doc.blocks[1].text.index(" at")
    assert doc.source[doc.blocks[1].starts[gap] : doc.blocks[1].ends[gap]] == "\r\n"
    assert doc.line_col(doc.blocks[1].starts[0]) == (2, 1)


@pytest.mark.parametrize("source", ["", "\n\n  \n", "{code}\nx\n{code}"])
def test_empty_input(source):
    assert jira(source).blocks == ()


# --- property test -----------------------------------------------------------------------

WORDS = ["deploy", "rollback", "Sam", "Zoë", "José", "東京", "🚀", "on-call", "snake_case"]
word = st.sampled_from(WORDS)
inline = st.one_of(
    word,
    word.map(lambda w: f"*{w}*"),
    word.map(lambda w: f"_{w}_"),
    word.map(lambda w: f"-{w}-"),
    word.map(lambda w: f"+{w}+"),
    word.map(lambda w: f"??{w}??"),
    st.just("{{qqcode x}}"),
    word.map(lambda w: f"[{w} page|https://qq.example.com/{w}]"),
    st.just("[https://qq.example.com]"),
    st.just("[~sam.lee]"),
    st.just("[~accountid:5b10ac8d82e05b22cc7d4ef5]"),
    st.just("https://qq.example.org/path"),
    st.just("{color:red}"),
    st.just("{color}"),
    st.just("\\*"),
    st.just("\\\\"),
    st.just("!qqimage.png!"),
    st.just("[1]"),
)
line = st.lists(inline, min_size=1, max_size=6).map(" ".join)
block = st.one_of(
    st.lists(line, min_size=1, max_size=3).map("\n".join),
    st.tuples(st.integers(1, 6), line).map(lambda t: f"h{t[0]}. {t[1]}"),
    st.lists(
        st.tuples(st.sampled_from(["*", "**", "#", "#*", "-"]), line).map(" ".join),
        min_size=1,
        max_size=3,
    ).map("\n".join),
    st.lists(st.lists(line, min_size=2, max_size=2), min_size=1, max_size=3).map(
        lambda rows: "||h1||h2||\n" + "\n".join("|" + "|".join(r) + "|" for r in rows)
    ),
    line.map(lambda ln: "{quote}\n" + ln + "\n{quote}"),
    line.map(lambda ln: "bq. " + ln),
    st.just("{code}\nqqcode Sam\n{code}"),
    line.map(lambda ln: "{panel}\n" + ln + "\n{panel}"),
)
document = st.tuples(st.lists(block, max_size=6), st.sampled_from(["\n", "\r\n"])).map(
    lambda t: "\n\n".join(t[0]).replace("\n", t[1])
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document)
def test_property_offsets_map_back_to_source(source):
    doc = jira(source)
    for b in doc.blocks:
        assert "qq" not in b.text, b.text


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="ab \t\n\r*_-+^~?{}[]|!#\\:/.hq1é🚀", max_size=80))
def test_property_arbitrary_jira_never_breaks_offsets(source):
    jira(source)
