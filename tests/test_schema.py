"""Rule-pack validation names the file, the rule and the field that is wrong."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rules.schema import MAX_PACK_CHARS, PackError, load_pack, parse_pack
from tests.yaml_bombs import billion_laughs, wide_pack

GOOD_RULE = """
  - id: test.human-error
    category: human-error
    severity: warning
    message: "Which interface made this easy?"
    explanation: "Human error is an attribution."
    suggestion: "What made {action_ing} easy?"
    patterns:
      - [{LOWER: human}, {LOWER: error}]
    examples:
      match: ["It was human error.", "Human error, again."]
      no_match: ["The disk filled up.", "A human-readable message."]
"""


def test_default_pack_loads_and_is_versioned() -> None:
    p = load_pack()
    assert p.name == "default" and p.version
    assert len(p.rules) >= 15
    assert len({r.id for r in p.rules}) == len(p.rules)


def test_good_pack_parses() -> None:
    p = parse_pack("name: t\nversion: '1'\nrules:\n" + GOOD_RULE, "t.yml")
    assert p.rules[0].id == "test.human-error"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("severity: warning", "severity: warn", "t.yml: rule 'test.human-error': field 'severity'"),
        ("category: human-error", "category: nope", "field 'category'"),
        ("[{LOWER: human}, {LOWER: error}]", "[{LOWR: human}]", "field 'patterns[0]': invalid"),
        ("[{LOWER: human}, {LOWER: error}]", "[{POS: NOUN}]", "attribute POS needs a tagger"),
        ('message: "Which interface made this easy?"', 'message: "Why did you do it?"', "'you'"),
        (
            'suggestion: "What made {action_ing} easy?"',
            'suggestion: "{who} did it"',
            "unknown placeholder {who}",
        ),
        (
            'no_match: ["The disk filled up.", "A human-readable message."]',
            'no_match: ["The disk filled up."]',
            "field 'examples'",
        ),
        ("id: test.human-error", "id: Bad Id", "rule #1: field 'id'"),
        ('    explanation: "Human error is an attribution."\n', "", "field 'explanation'"),
        ("severity: warning", "severity: warning\n    colour: red", "unknown rule field 'colour'"),
    ],
)
def test_errors_name_file_rule_and_field(old: str, new: str, message: str) -> None:
    text = "name: t\nversion: '1'\nrules:\n" + GOOD_RULE.replace(old, new)
    with pytest.raises(PackError) as err:
        parse_pack(text, "t.yml")
    assert str(err.value).startswith("t.yml")
    assert message in str(err.value)


def test_invalid_yaml_reports_position() -> None:
    with pytest.raises(PackError, match=r"t.yml: invalid YAML at line 3, column 1"):
        parse_pack("rules:\n  - id: [unclosed\n", "t.yml")


def test_duplicate_ids_are_refused() -> None:
    text = "name: t\nversion: '1'\nrules:\n" + GOOD_RULE + GOOD_RULE
    with pytest.raises(PackError, match="duplicate rule id"):
        parse_pack(text, "t.yml")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="not found"):
        load_pack(tmp_path / "nope.yml")
    bad = tmp_path / "latin1.yml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(PackError, match="not UTF-8"):
        load_pack(bad)


def test_overlay_relevels_and_disables_rules_of_the_default_pack() -> None:
    text = """
extends: default
settings:
  self_blame: "off"
rules:
  - id: blame.human-error
    severity: error
  - id: growth.brilliance
    enabled: false
"""
    p = parse_pack(text, "org.yml")
    assert p.rule("blame.human-error").severity == "error"
    assert not p.rule("growth.brilliance").enabled
    assert "growth.brilliance" not in {r.id for r in p.active}
    assert p.settings.self_blame == "off"
    assert len(p.rules) == len(load_pack().rules)


def test_settings_are_validated() -> None:
    with pytest.raises(PackError, match="settings.self_blame"):
        parse_pack("extends: default\nsettings:\n  self_blame: loud\n", "o.yml")


RUNAWAY = """
name: t
version: "1"
rules:
  - id: test.runaway
    category: human-error
    severity: warning
    message: "Which interface made this easy?"
    explanation: "A pattern an admin might write."
    suggestion: "What made it easy?"
    patterns:
      - [{LOWER: {REGEX: "PATTERN"}}]
    examples:
      match: ["aaa happened.", "It was aaa."]
      no_match: ["The disk filled up.", "Nothing here."]
"""


@pytest.mark.parametrize("regex", ["^(a+)+$", "^(a|aa)+$", "(\\\\w*a)*x", "^(a|a)+$"])
def test_runaway_regular_expressions_are_refused(regex: str) -> None:
    with pytest.raises(PackError, match="rule 'test.runaway'.*can run away"):
        parse_pack(RUNAWAY.replace("PATTERN", regex), "t.yml")


def test_sound_regular_expressions_load() -> None:
    pack = parse_pack(RUNAWAY.replace("PATTERN", "^a{3}$"), "t.yml")
    assert pack.rules[0].id == "test.runaway"


def test_huge_lists_and_long_or_broken_regexes_are_refused() -> None:
    words = ", ".join(f"w{i}" for i in range(6000))
    text = RUNAWAY.replace('{REGEX: "PATTERN"}', "{IN: [" + words + "]}")
    with pytest.raises(PackError, match="lists 6000 words"):
        parse_pack(text, "t.yml")
    with pytest.raises(PackError, match="over 300 characters"):
        parse_pack(RUNAWAY.replace("PATTERN", "a" * 301), "t.yml")
    with pytest.raises(PackError, match="does not compile"):
        parse_pack(RUNAWAY.replace("PATTERN", "(unclosed"), "t.yml")


# Found by an attack on a running instance (issue 9, High 3): these passed the old check.
@pytest.mark.parametrize(
    ("regex", "why"),
    [
        ("^((ab)+)+$", "holds a repeat"),
        ("\\\\w*\\\\w*\\\\w*\\\\w*z", "two repeats in a row"),
        ("(a|a)*$", "alternatives that can match the same text"),
        ("(\\\\w+\\\\s?)*$", "holds a repeat"),
        ("\\\\d+\\\\w+", "two repeats in a row"),
        (".*-?.*x", "two repeats in a row"),
        ("(a)\\\\1", "backreference"),
    ],
)
def test_backtracking_shapes_are_refused_by_their_parse(regex: str, why: str) -> None:
    with pytest.raises(PackError) as err:
        parse_pack(RUNAWAY.replace("PATTERN", regex), "t.yml")
    message = str(err.value)
    assert message.startswith("t.yml: rule 'test.runaway': field 'patterns[0]': LOWER REGEX")
    assert "can run away" in message and why in message


@pytest.mark.parametrize(
    "token",
    [
        '{LOWER: {REGEX: {IN: ["^fine$", "^((ab)+)+$"]}}}',
        '{_: {pmg_person: {REGEX: "^((ab)+)+$"}}}',
        '{NORM: {FUZZY: {REGEX: "^((ab)+)+$"}}}',
    ],
)
def test_every_place_a_pattern_holds_a_regex_is_checked(token: str) -> None:
    text = RUNAWAY.replace('{LOWER: {REGEX: "PATTERN"}}', token)
    with pytest.raises(PackError, match="field 'patterns\\[0\\]': .*REGEX .*can run away"):
        parse_pack(text, "t.yml")


def test_regexes_in_unless_and_skip_sentences_are_checked() -> None:
    unless = RUNAWAY.replace("PATTERN", "^a{3}$").replace(
        "    examples:", '    unless:\n      - [{LOWER: {REGEX: "(a|a)*$"}}]\n    examples:'
    )
    with pytest.raises(PackError, match="field 'unless\\[0\\]': LOWER REGEX .*can run away"):
        parse_pack(unless, "t.yml")
    skip = "extends: default\nskip_sentences:\n  - [{TEXT: {REGEX: '\\w*\\w*x'}}]\n"
    with pytest.raises(PackError, match="o.yml: skip_sentences: field .*can run away"):
        parse_pack(skip, "o.yml")


@pytest.mark.parametrize(
    "regex",
    [
        "^fat-?finger(s|ed|ing)?$",
        "^(double-?check|check|look)(ing)?$",
        "^[a-z-]+(?:ed|en|ght)$",
        "(?:ab|ac)+x",
        "^[a-z]*-[0-9]*$",
        "(?i)^mis-?typ",
    ],
)
def test_repeats_that_cannot_overlap_load(regex: str) -> None:
    assert parse_pack(RUNAWAY.replace("PATTERN", regex), "t.yml").rules[0].id == "test.runaway"


# Issue 9, Medium 4: YAML aliases that stand for far more than the text says.
@pytest.mark.parametrize(
    "text",
    [
        billion_laughs("definitions") + "rules: []\n",
        wide_pack(),  # 4 KB, 250,000 pattern tokens
    ],
    ids=["billion-laughs", "wide"],
)
def test_packs_whose_aliases_expand_too_far_are_refused_fast(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(PackError, match=r"^t.yml: YAML aliases in t.yml stand for over .*line"):
        parse_pack(text, "t.yml")
    assert time.perf_counter() - started < 0.5


def test_shared_word_lists_still_load() -> None:
    text = "definitions:\n  w: &w [human, manual]\nrules:\n" + GOOD_RULE.replace(
        "{LOWER: human}", "{LOWER: {IN: *w}}"
    )
    [token, *_] = parse_pack(text, "t.yml").rules[0].patterns[0]
    assert token == {"LOWER": {"IN": ["human", "manual"]}}


def test_oversized_and_deeply_nested_packs_are_refused() -> None:
    with pytest.raises(PackError, match=f"t.yml: over {MAX_PACK_CHARS} characters"):
        parse_pack("# " + "x" * MAX_PACK_CHARS, "t.yml")
    with pytest.raises(PackError, match="t.yml: YAML in t.yml nests deeper than 40 levels"):
        parse_pack("rules: " + "[" * 5000 + "]" * 5000, "t.yml")
