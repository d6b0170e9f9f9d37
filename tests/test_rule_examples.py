"""Every rule's own examples, in both pipeline modes (RuleTester style): a rule must match
each of its `match` sentences and none of its `no_match` near-misses."""

from __future__ import annotations

import pytest

from nlp.blame import compile_pack
from nlp.pipeline import get_pipeline
from rules.schema import load_pack
from rules.testing import matches, run_examples

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
    compiled = compile_pack(PACK, get_pipeline(mode))
    assert matches(compiled, rule_id, text) is expected


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
