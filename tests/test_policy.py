"""ActionPolicy: defaults, heading matching, validation and YAML loading."""

from __future__ import annotations

import pytest

from rules.action_words import heading_kind
from rules.policy import (
    DEFAULT_HEADINGS,
    DEFAULT_LESSON_HOME_WORDS,
    ActionPolicy,
    PolicyError,
    heading_matches,
    heading_tokens,
)


def test_defaults():
    policy = ActionPolicy()
    assert policy.min_items == 1
    assert not (policy.require_owner or policy.require_tracking or policy.require_due)
    assert not policy.require_lesson_home
    assert "Action items" in policy.headings
    assert {"runbook", "checklist", "decision log"} <= set(DEFAULT_LESSON_HOME_WORDS)


@pytest.mark.parametrize("heading", DEFAULT_HEADINGS)
def test_every_default_heading_matches_itself(heading):
    assert ActionPolicy().matches_heading(heading)


@pytest.mark.parametrize(
    "heading",
    [
        "Action items",
        "ACTION ITEMS",
        "Action item",
        "Action Items (owner, due)",
        "3. Action items",
        "3.2 Action items",
        "IV. Remediations",
        "B) Next steps",
        "🛠️ Follow-ups",
        "✅ Action items:",
        "Follow-up items",
        "Followups",
        "Follow up actions",
        "Corrective actions",
        "Corrective and preventive actions",
        "Corrective and Preventative Measures",
        "What we’ll do differently",
        "What we will do differently next time",
        "Lessons learned and action items",
        "Immediate actions (completed)",
        "Short-term improvements",
        "Actions for Q3",
        "Our next steps",
        "Prevention",
    ],
)
def test_heading_variants_match(heading):
    assert ActionPolicy().matches_heading(heading)


@pytest.mark.parametrize(
    "heading",
    [
        "Lessons learned",
        "Timeline",
        "Actions taken",
        "Timeline of actions",
        "What went well",
        "Impact",
        "Root cause",
        "",
        "🔥",
    ],
)
def test_other_headings_do_not_match(heading):
    assert not ActionPolicy().matches_heading(heading)


def test_heading_tokens_drop_numbering_emoji_and_asides():
    assert heading_tokens("2. 🚒 Follow-ups (owner, due):") == ("follow", "up")
    assert heading_tokens("(draft)") == ("draft",)


def test_custom_headings_replace_the_default_list():
    policy = ActionPolicy.from_mapping(
        {"headings": ["Mitigations", "Work to do"], "detect_headings": False}
    )
    assert policy.matches_heading("Mitigations")
    assert policy.matches_heading("Work to do after the outage")
    assert not policy.matches_heading("Action items")
    assert heading_matches("Mitigation", ["Mitigations"])
    # With detection on (the default) the list adds a team's own titles to what the words
    # of a heading already say.
    detecting = ActionPolicy.from_mapping({"headings": ["Mitigations"]})
    assert detecting.matches_heading("Mitigations")
    assert detecting.matches_heading("Action items")
    assert not detecting.matches_heading("Steps we took")


def test_detect_headings_must_be_a_boolean():
    with pytest.raises(PolicyError, match="detect_headings"):
        ActionPolicy.from_mapping({"detect_headings": "yes"})


@pytest.mark.parametrize(
    ("heading", "kind"),
    [
        ("What we're doing about it", "strong"),
        ("How are we preventing it from happening again?", "strong"),
        ("What will we do differently, and where does it live?", "strong"),
        ("Corrective and Preventative Measures", "strong"),
        ("Lessons learned & actions", "strong"),
        ("TODO", "strong"),
        ("Follow ups", "strong"),
        ("Next Steps", "strong"),
        ("Lessons learned", "weak"),
        ("Takeaways", "weak"),
        ("Actions taken", None),
        ("What were we doing?", None),
        ("What should you do?", None),
        ("How did it happen?", None),
        ("Timeline", None),
        ("Transaction log", None),
    ],
)
def test_heading_kind_by_word_class(heading, kind):
    assert heading_kind(heading) == kind


def test_from_mapping_reads_every_knob():
    policy = ActionPolicy.from_mapping(
        {
            "min_items": 2,
            "require_owner": True,
            "require_tracking": True,
            "require_due": True,
            "require_lesson_home": True,
            "lesson_home_words": ["runbook", " playbook "],
        },
        "team.yml",
    )
    assert policy.min_items == 2
    assert policy.require_owner and policy.require_tracking and policy.require_due
    assert policy.require_lesson_home
    assert policy.lesson_home_words == ("runbook", "playbook")
    assert ActionPolicy.from_mapping(None) == ActionPolicy()
    assert ActionPolicy.from_mapping({}) == ActionPolicy()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"min_item": 2}, "policy.yml: unknown key 'min_item' (closest known key: 'min_items')"),
        ({"colour": "blue"}, "policy.yml: unknown key 'colour'"),
        ({"min_items": -1}, "policy.yml: 'min_items' must be a non-negative integer"),
        ({"min_items": "2"}, "policy.yml: 'min_items' must be a non-negative integer"),
        ({"min_items": True}, "policy.yml: 'min_items' must be a non-negative integer"),
        ({"min_items": 1.5}, "policy.yml: 'min_items' must be a non-negative integer"),
        ({"require_owner": "yes please"}, "policy.yml: 'require_owner' must be true or false"),
        ({"require_due": 1}, "policy.yml: 'require_due' must be true or false"),
        ({"headings": "Action items"}, "policy.yml: 'headings' must be a list of strings"),
        ({"headings": ["Action items", 3]}, "policy.yml: 'headings' must be a list of non-empty"),
        ({"headings": []}, "policy.yml: 'headings' must list at least one entry"),
        ({"lesson_home_words": [" "]}, "policy.yml: 'lesson_home_words' must be a list of non-e"),
    ],
)
def test_from_mapping_errors_name_source_and_key(data, message):
    with pytest.raises(PolicyError) as info:
        ActionPolicy.from_mapping(data, "policy.yml")
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)


def test_from_mapping_rejects_non_mapping():
    with pytest.raises(PolicyError, match=r"^<policy>: .*mapping"):
        ActionPolicy.from_mapping(["min_items"])  # type: ignore[arg-type]


def test_load_top_level_knobs(tmp_path):
    path = tmp_path / "policy.yml"
    path.write_text("min_items: 2\nrequire_owner: true\n", encoding="utf-8")
    assert ActionPolicy.load(path) == ActionPolicy(min_items=2, require_owner=True)


def test_load_under_action_items_ignores_other_sections(tmp_path):
    path = tmp_path / "pmguard.yml"
    path.write_text(
        "enforcement: comment\naction_items:\n  require_tracking: true\n  headings: [Follow-ups]\n",
        encoding="utf-8",
    )
    policy = ActionPolicy.load(str(path))
    assert policy.require_tracking
    assert policy.headings == ("Follow-ups",)


def test_load_empty_file_and_empty_section_give_defaults(tmp_path):
    empty = tmp_path / "empty.yml"
    empty.write_text("", encoding="utf-8")
    assert ActionPolicy.load(empty) == ActionPolicy()
    bare = tmp_path / "bare.yml"
    bare.write_text("action_items:\n", encoding="utf-8")
    assert ActionPolicy.load(bare) == ActionPolicy()


def test_load_errors(tmp_path):
    missing = tmp_path / "nope.yml"
    with pytest.raises(PolicyError, match=r"nope\.yml: policy file not found"):
        ActionPolicy.load(missing)
    with pytest.raises(PolicyError, match="is a directory"):
        ActionPolicy.load(tmp_path)

    bad = tmp_path / "bad.yml"
    bad.write_text("min_items: [1\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"bad\.yml: invalid YAML at line \d+, column \d+"):
        ActionPolicy.load(bad)

    latin = tmp_path / "latin.yml"
    latin.write_bytes("headings: [Maßnahmen]\n".encode("latin-1"))
    with pytest.raises(PolicyError, match=r"latin\.yml: not UTF-8 text"):
        ActionPolicy.load(latin)

    scalar = tmp_path / "scalar.yml"
    scalar.write_text("just words\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"scalar\.yml: a policy file is a mapping"):
        ActionPolicy.load(scalar)

    nested = tmp_path / "nested.yml"
    nested.write_text("action_items:\n  min_item: 3\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"nested\.yml: unknown key 'min_item'"):
        ActionPolicy.load(nested)

    both = tmp_path / "both.yml"
    both.write_text("min_items: 2\naction_items:\n  min_items: 3\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="set both at top level and under 'action_items'"):
        ActionPolicy.load(both)

    wrong = tmp_path / "wrong.yml"
    wrong.write_text("action_items: [1, 2]\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"wrong\.yml: the action-item policy must be a mapping"):
        ActionPolicy.load(wrong)


def test_policy_is_frozen():
    policy = ActionPolicy()
    with pytest.raises(AttributeError):
        policy.min_items = 3  # type: ignore[misc]


def test_a_policy_file_with_aliases_is_refused():
    with pytest.raises(PolicyError, match=r"YAML aliases \(\*h\) are not allowed in p.yml, line 2"):
        ActionPolicy.parse("headings: &h [Action items]\nlesson_home_words: *h\n", "p.yml")
