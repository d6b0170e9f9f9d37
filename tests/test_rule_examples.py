"""Every rule's own examples, in both pipeline modes (RuleTester style): a rule must match
each of its `match` sentences and none of its `no_match` near-misses."""

from __future__ import annotations

import pytest

from check.examples import check_reports, matches, run_examples
from nlp.blame import compile_pack
from nlp.pipeline import get_pipeline
from rules.schema import load_pack

PACK = load_pack()
CASES = [
    pytest.param(rule.id, text, expected, id=f"{rule.id}:{'match' if expected else 'no'}:{n}")
    for rule in PACK.active  # off by default: the model rules (tests/test_blame_classifier.py)
    for expected, examples in ((True, rule.examples_match), (False, rule.examples_no_match))
    for n, text in enumerate(examples)
]


@pytest.mark.parametrize(("rule_id", "text", "expected"), CASES)
@pytest.mark.parametrize("mode", ["auto", "blank"], ids=["trained", "blank"])
def test_rule_example(mode: str, rule_id: str, text: str, expected: bool) -> None:
    if PACK.rule(rule_id).check:  # an action-item check: its examples are whole documents
        assert check_reports(PACK, rule_id, text, mode) is expected
        return
    compiled = compile_pack(PACK, get_pipeline(mode))
    assert matches(compiled, rule_id, text) is expected


def test_every_action_item_check_is_worded_in_the_pack() -> None:
    from nlp.actions import _MESSAGES
    from rules.schema import ACTION_CHECKS

    assert sorted(ACTION_CHECKS) == sorted(_MESSAGES)
    assert sorted(r.id for r in PACK.rules if r.check) == sorted(ACTION_CHECKS)


def test_a_pack_relevels_and_disables_an_action_item_check() -> None:
    from dataclasses import replace

    from nlp.analysis import analyse
    from rules.policy import ActionPolicy

    source = "# Outage\n\n## Action items\n\n- Add a TTL alert (#31)\n"
    policy = ActionPolicy(require_owner=True)
    rules = [
        replace(r, severity="error", message="Owner?") if r.id == "actions.missing-owner"
        else replace(r, enabled=False) if r.id == "actions.missing-tracking" else r
        for r in PACK.rules
    ]
    pack = replace(PACK, rules=tuple(rules))
    found = {f.rule: f for f in analyse(source, pack=pack, policy=policy, model="blank").findings}
    assert (found["actions.missing-owner"].severity, found["actions.missing-owner"].message) == (
        "error",
        "Owner?",
    )
    strict = ActionPolicy(require_owner=True, require_tracking=True)
    source = "# Outage\n\n## Action items\n\n- Add a TTL alert\n"
    analysis = analyse(source, pack=pack, policy=strict, model="blank")
    assert "actions.missing-tracking" not in {f.rule for f in analysis.findings}


def test_run_examples_reports_a_broken_rule() -> None:
    from rules.schema import parse_pack

    text = """
name: broken
version: "1"
rules:
  - id: test.always-human
    category: human-error
    severity: warning
    message: "Which interface made this easy?"
    explanation: "A deliberately wrong example list."
    suggestion: "What made it easy?"
    patterns:
      - [{LOWER: human}, {LOWER: error}]
    examples:
      match: ["It was human error.", "The cache expired early."]
      no_match: ["The disk filled up.", "Human error again."]
"""
    failures, count = run_examples(parse_pack(text, "broken.yml"), "blank")
    assert count == 4
    assert {(f.example, f.expected) for f in failures} == {
        ("The cache expired early.", True),
        ("Human error again.", False),
    }
    assert "should match but did not" in str(failures[0]) or "should not" in str(failures[0])


def test_every_category_of_the_reference_has_a_rule() -> None:
    categories = {r.category for r in PACK.rules}
    for needed in (
        "counterfactual",
        "negative-action",
        "if-only",
        "judgemental",
        "human-error",
        "named-agent",
        "hindsight",
        "procedure-violation",
        "mental-state",
        "root-cause-person",
        "accusatory-question",
        "action-items",
        "heroics",
        "brilliance",
    ):
        assert needed in categories
