"""Runs every rule's own examples, the way ESLint's RuleTester and proselint's
examples_pass/examples_fail do: a rule that misses its positives or hits its near-misses
is broken, whatever the benchmark says."""

from __future__ import annotations

from dataclasses import dataclass

from nlp.blame import compile_pack
from nlp.people import Roster
from nlp.pipeline import get_pipeline
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
                if matches(compiled, rule.id, example) != expected:
                    failures.append(ExampleFailure(rule.id, example, expected))
    return failures, count


def matches(compiled, rule_id: str, sentence: str) -> bool:
    rule = compiled.by_id[rule_id]
    doc = compiled.pipeline.nlp(sentence)
    hits = compiled.run(
        doc, Roster(), action_scope=rule.scope == "action_items", quoted=False, only=rule_id
    )
    return bool(hits)
