"""Atlassian Document Format JSON -> blocks whose offsets point into the JSON text."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlp.text import Document, TextFormatError, detect_format, parse
from tests.text_invariants import assert_offsets as check_offsets


def _json_decodes_to(piece: str, group: str) -> bool:
    try:
        return json.loads('"' + piece + '"') == group
    except ValueError:
        return False


def _allowed_adf(group: str, piece: str) -> bool:
    """May the text `group` stand for the differing source `piece`?"""
    if group in ("link", "code"):
        return len(piece) > 1
    if group.isspace():  # hardBreak nodes and joins between paragraphs of one item or cell
        return piece.startswith("{") or _json_decodes_to(piece, group)
    if len(group) == 10 and group[4] == "-" and group[7] == "-":  # ISO date of a date node
        return piece.strip('"').isdigit()
    return _json_decodes_to(piece, group)


def assert_offsets(doc: Document) -> None:
    check_offsets(doc, _allowed_adf)


def adf(content: list, *, ensure_ascii: bool = False, indent: int | None = 2, **kw) -> Document:
    source = json.dumps(
        {"type": "doc", "version": 1, "content": content}, ensure_ascii=ensure_ascii, indent=indent
    )
    doc = parse(source, "adf", **kw)
    assert doc.format == "adf"
    assert doc.directives == ()
    assert_offsets(doc)
    return doc


def text(value: str, *marks) -> dict:
    node: dict = {"type": "text", "text": value}
    if marks:
        node["marks"] = [{"type": m} if isinstance(m, str) else m for m in marks]
    return node


def para(*content) -> dict:
    return {"type": "paragraph", "content": list(content)}


def heading(level: int, value: str) -> dict:
    return {"type": "heading", "attrs": {"level": level}, "content": [text(value)]}


def item(*content) -> dict:
    return {"type": "listItem", "content": list(content)}


def texts(doc: Document) -> list[str]:
    return [b.text for b in doc.blocks]


def source_of(doc: Document, block_index: int, needle: str) -> str:
    block = doc.blocks[block_index]
    at = block.text.index(needle)
    start, end = block.source_span(at, at + len(needle))
    return doc.source[start:end]


def test_headings_paragraphs_and_sections():
    doc = adf(
        [heading(1, "Checkout outage"), heading(2, "Summary"), para(text("Payments failed."))]
    )
    assert [(b.kind, b.text, b.heading_level, b.section) for b in doc.blocks] == [
        ("heading", "Checkout outage", 1, ""),
        ("heading", "Summary", 2, "Checkout outage"),
        ("paragraph", "Payments failed.", 0, "Summary"),
    ]


def test_adjacent_text_nodes_join_and_marks_are_dropped():
    doc = adf(
        [
            para(
                text("The "),
                text("config", "strong"),
                text(" push "),
                text("failed", "em"),
                text("."),
            )
        ]
    )
    assert texts(doc) == ["The config push failed."]
    assert source_of(doc, 0, "config") == "config"


def test_offsets_point_into_the_json_text():
    doc = adf([para(text("Sam restarted it"))], indent=None)
    block = doc.blocks[0]
    assert doc.source[block.starts[0] : block.ends[-1]] == "Sam restarted it"
    assert doc.line_col(block.starts[0]) == (1, doc.source.index("Sam") + 1)


def test_escapes_map_onto_the_escape_sequence():
    doc = adf([para(text('Zoë said "stop"\tnow 🚀'))], ensure_ascii=True)
    block = doc.blocks[0]
    assert block.text == 'Zoë said "stop"\tnow 🚀'
    assert source_of(doc, 0, "ë") == "\\u00eb"
    assert source_of(doc, 0, '"') == '\\"'
    assert source_of(doc, 0, "🚀") == "\\ud83d\\ude80"


def test_inline_code_and_urls_become_placeholders():
    link = {"type": "link", "attrs": {"href": "https://wiki.example.com/rb"}}
    doc = adf(
        [
            para(
                text("Ran "),
                text("kubectl rollout undo", "code"),
                text(" per the "),
                text("runbook", link),
                text(", see https://status.example.com/42."),
            )
        ]
    )
    assert texts(doc) == ["Ran code per the runbook, see link."]
    assert source_of(doc, 0, "code") == "kubectl rollout undo"
    assert source_of(doc, 0, "link") == "https://status.example.com/42"


def test_mentions_status_dates_cards_emoji_and_breaks():
    doc = adf(
        [
            para(
                {"type": "mention", "attrs": {"id": "5b10", "text": "@Zoë Martín"}},
                text(" restarted it"),
                {"type": "emoji", "attrs": {"shortName": ":fire:", "text": "🔥"}},
                {"type": "hardBreak"},
                text("tracked in "),
                {"type": "inlineCard", "attrs": {"url": "https://jira.example.com/browse/OPS-7"}},
                text(" due "),
                {"type": "date", "attrs": {"timestamp": "1717200000000"}},
                text(" "),
                {"type": "status", "attrs": {"text": "IN PROGRESS", "color": "blue"}},
            )
        ]
    )
    assert texts(doc) == ["@Zoë Martín restarted it tracked in link due 2024-06-01 IN PROGRESS"]
    assert source_of(doc, 0, "@Zoë Martín") == "@Zoë Martín"
    assert source_of(doc, 0, "link") == "https://jira.example.com/browse/OPS-7"
    assert source_of(doc, 0, "2024-06-01") == "1717200000000"
    gap = doc.blocks[0].text.index(" tracked")
    assert doc.source[doc.blocks[0].starts[gap]] == "{"


def test_lists_nest_with_depth():
    doc = adf(
        [
            {
                "type": "bulletList",
                "content": [
                    item(
                        para(text("first")),
                        {"type": "orderedList", "content": [item(para(text("nested")))]},
                    ),
                    item(para(text("second")), para(text("more of second"))),
                ],
            }
        ]
    )
    assert [(b.text, b.list_depth, b.kind) for b in doc.blocks] == [
        ("first", 1, "list_item"),
        ("nested", 2, "list_item"),
        ("second\nmore of second", 1, "list_item"),
    ]


def test_task_and_decision_lists():
    def task(state, value):
        return {
            "type": "taskItem",
            "attrs": {"localId": value, "state": state},
            "content": [text(value)],
        }

    doc = adf(
        [
            heading(2, "Action items"),
            {
                "type": "taskList",
                "attrs": {"localId": "t"},
                "content": [
                    task("DONE", "Add canary stage"),
                    {
                        "type": "taskList",
                        "attrs": {"localId": "u"},
                        "content": [task("TODO", "Alert on lag")],
                    },
                ],
            },
            {
                "type": "decisionList",
                "content": [
                    {
                        "type": "decisionItem",
                        "attrs": {"state": "DECIDED"},
                        "content": [text("Freeze Fridays")],
                    }
                ],
            },
        ]
    )
    assert [(b.text, b.list_depth, b.checked, b.section) for b in doc.blocks[1:]] == [
        ("Add canary stage", 1, True, "Action items"),
        ("Alert on lag", 2, False, "Action items"),
        ("Freeze Fridays", 1, None, "Action items"),
    ]


def test_tables_with_header_cells():
    def cell(kind, *paragraphs):
        return {"type": kind, "attrs": {}, "content": [para(text(p)) for p in paragraphs]}

    doc = adf(
        [
            {
                "type": "table",
                "content": [
                    {
                        "type": "tableRow",
                        "content": [cell("tableHeader", "Time"), cell("tableHeader", "Event")],
                    },
                    {
                        "type": "tableRow",
                        "content": [
                            cell("tableCell", "14:02"),
                            cell("tableCell", "Deploy", "then alert"),
                        ],
                    },
                ],
            }
        ]
    )
    assert [(b.text, b.table, b.row, b.column, b.header, b.kind) for b in doc.blocks] == [
        ("Time", 0, 0, 0, "Time", "table_cell"),
        ("Event", 0, 0, 1, "Event", "table_cell"),
        ("14:02", 0, 1, 0, "Time", "table_cell"),
        ("Deploy\nthen alert", 0, 1, 1, "Event", "table_cell"),
    ]


def test_code_media_and_rules_skipped_panels_and_expands_read():
    doc = adf(
        [
            {
                "type": "codeBlock",
                "attrs": {"language": "python"},
                "content": [text("sam.blame()")],
            },
            {"type": "rule"},
            {
                "type": "mediaSingle",
                "content": [{"type": "media", "attrs": {"id": "x", "type": "file"}}],
            },
            {
                "type": "panel",
                "attrs": {"panelType": "info"},
                "content": [para(text("Panel words."))],
            },
            {
                "type": "expand",
                "attrs": {"title": "Logs"},
                "content": [para(text("Expand words."))],
            },
        ]
    )
    assert texts(doc) == ["Panel words.", "Expand words."]


def test_blockquote_quoted_or_dropped():
    content = [
        para(text("Ours.")),
        {"type": "blockquote", "content": [para(text("Sam broke it."))]},
    ]
    assert [(b.text, b.quoted) for b in adf(content).blocks] == [
        ("Ours.", False),
        ("Sam broke it.", True),
    ]
    assert texts(adf(content, include_blockquotes=False)) == ["Ours."]


def test_crlf_pretty_printed_json():
    source = json.dumps({"type": "doc", "version": 1, "content": [para(text("Line"))]}, indent=2)
    source = source.replace("\n", "\r\n")
    doc = parse(source, "adf")
    assert texts(doc) == ["Line"]
    assert_offsets(doc)
    line, _col = doc.line_col(doc.blocks[0].starts[0])
    assert source.splitlines()[line - 1].strip().startswith('"text": "Line"')


@pytest.mark.parametrize("source", ["", "  \n", '{"type": "doc", "version": 1, "content": []}'])
def test_empty_input(source):
    assert parse(source, "adf").blocks == ()


def test_detects_adf():
    assert detect_format(json.dumps({"type": "doc", "version": 1, "content": []})) == "adf"


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ('{"type": "doc", "content": [', "not valid JSON: Expecting value at line 1, column 29"),
        ('{"type": "doc",\n "content": [}', "line 2, column 14"),
        ("[1, 2]", "the top level is a JSON array at line 1, column 1"),
        ('\n "just text"', "the top level is a JSON string at line 2, column 2"),
        ('{"type": "paragraph", "content": []}', 'line 1, column 1 has "type": "paragraph"'),
        ('{"version": 1}', 'has "type": null; expected "doc"'),
        ('{"type": "doc", "content": {}}', '"content" that is a JSON object; expected an array'),
    ],
)
def test_broken_adf_raises_text_format_error(source, fragment):
    with pytest.raises(TextFormatError) as info:
        parse(source, "adf")
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


# --- property test -----------------------------------------------------------------------

WORDS = ["deploy", "Sam", "Zoë", 'say "hi"', "tab\there", "東京", "🚀", "back\\slash", "new\nline"]
inline_node = st.one_of(
    st.sampled_from(WORDS).map(lambda w: text(w + " ")),
    st.sampled_from(WORDS).map(lambda w: text(w, "strong")),
    st.just(text("qq code", "code")),
    st.just(text("https://qq.example.com/x")),
    st.just(text("see https://qq.example.com/y now")),
    st.just({"type": "mention", "attrs": {"id": "1", "text": "@Zoë Martín"}}),
    st.just({"type": "hardBreak"}),
    st.just({"type": "emoji", "attrs": {"shortName": ":qq:", "text": "🔥"}}),
    st.just({"type": "inlineCard", "attrs": {"url": "https://qq.example.com/z"}}),
    st.just({"type": "date", "attrs": {"timestamp": "1717200000000"}}),
    st.just({"type": "status", "attrs": {"text": "DONE"}}),
)
paragraph = st.lists(inline_node, min_size=1, max_size=5).map(lambda c: para(*c))
leaf_block = st.one_of(
    paragraph,
    st.tuples(st.integers(1, 6), st.sampled_from(WORDS)).map(lambda t: heading(*t)),
    st.just({"type": "codeBlock", "content": [text("qq code block")]}),
)


def _lists(children):
    return st.one_of(
        st.lists(
            st.lists(children, min_size=1, max_size=2).map(lambda c: item(*c)),
            min_size=1,
            max_size=3,
        ).map(lambda items: {"type": "bulletList", "content": items}),
        st.lists(
            st.tuples(
                st.sampled_from(["DONE", "TODO"]), st.lists(inline_node, min_size=1, max_size=3)
            ).map(lambda t: {"type": "taskItem", "attrs": {"state": t[0]}, "content": t[1]}),
            min_size=1,
            max_size=3,
        ).map(lambda items: {"type": "taskList", "content": items}),
        st.lists(children, min_size=1, max_size=2).map(
            lambda c: {"type": "blockquote", "content": c}
        ),
        st.lists(children, min_size=1, max_size=2).map(lambda c: {"type": "panel", "content": c}),
        st.lists(
            st.lists(
                st.tuples(
                    st.sampled_from(["tableHeader", "tableCell"]),
                    st.lists(children, min_size=1, max_size=2),
                ).map(lambda t: {"type": t[0], "content": t[1]}),
                min_size=1,
                max_size=3,
            ).map(lambda cells: {"type": "tableRow", "content": cells}),
            min_size=1,
            max_size=3,
        ).map(lambda rows: {"type": "table", "content": rows}),
    )


block = st.recursive(leaf_block, _lists, max_leaves=12)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(block, max_size=5), st.booleans(), st.sampled_from([None, 0, 2]))
def test_property_offsets_map_back_to_source(content, ensure_ascii, indent):
    doc = adf(content, ensure_ascii=ensure_ascii, indent=indent)
    for b in doc.blocks:
        assert "qq" not in b.text, b.text
