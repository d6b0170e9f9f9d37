"""Runs every rule's own examples, the way ESLint's RuleTester and proselint's
examples_pass/examples_fail do: a rule that misses its positives or hits its near-misses
is broken, whatever the benchmark says."""

from __future__ import annotations

from dataclasses import dataclass

from nlp.analysis import analyse
from nlp.blame import compile_pack
from nlp.people import Roster
from nlp.pipeline import get_pipeline
from rules.policy import ActionPolicy
from rules.schema import RulePack


@dataclass(frozen=True)
class ExampleFailure:
    rule: str
    example: str
    expected: bool  # True: should match

    def __str__(self) -> str:
        verb = "should match but did not" if self.expected else "should not match but did"
        return f"{self.rule}: {verb}: {self.example!r}"


def run_examples(pack: RulePack, model: str | None = None) -> tuple[list[ExampleFailure], int]:
    """(failures, examples run) for every enabled rule the pipeline can run."""
    pipeline = get_pipeline(model)
    compiled = compile_pack(pack, pipeline)
    failures: list[ExampleFailure] = []
    count = 0
    for rule in compiled.rules:
        for expected, examples in ((True, rule.examples_match), (False, rule.examples_no_match)):
            for example in examples:
                count += 1
                found = (
                    check_reports(pack, rule.id, example, model)
                    if rule.check
                    else matches(compiled, rule.id, example)
                )
                if found != expected:
                    failures.append(ExampleFailure(rule.id, example, expected))
    return failures, count


# Every requirement on, and two items asked for, so each check's examples can show it.
EXAMPLE_POLICY = ActionPolicy(
    min_items=2,
    require_owner=True,
    require_tracking=True,
    require_due=True,
    require_lesson_home=True,
)


def check_reports(pack: RulePack, rule_id: str, document: str, model: str | None = None) -> bool:
    """Whether an action-item check (`check: true`) reports on a whole markdown document."""
    analysis = analyse(document, pack=pack, policy=EXAMPLE_POLICY, model=model)
    return any(f.rule == rule_id for f in analysis.findings)


def matches(compiled, rule_id: str, sentence: str) -> bool:
    rule = compiled.by_id[rule_id]
    doc = compiled.pipeline.nlp(sentence)
    hits = compiled.run(
        doc, Roster(), action_scope=rule.scope == "action_items", quoted=False, only=rule_id
    )
    return bool(hits)
