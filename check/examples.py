"""Runs every rule's own examples, the way ESLint's RuleTester and proselint's
examples_pass/examples_fail do: a rule that misses its positives or hits its near-misses
is broken, whatever the benchmark says."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from nlp.analysis import analyse
from nlp.blame import compile_pack
from nlp.people import Roster
from nlp.pipeline import get_pipeline
from rules.policy import ActionPolicy
from rules.schema import RulePack, parse_pack
from rules.versions import PUBLISH_MODES, DraftCheck, ExampleFailure, PublishRefused


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


# --- the publish gate -----------------------------------------------------------------

_examples_lock = threading.Lock()
_EXAMPLES_CACHE_SIZE = 8
_examples: OrderedDict[str, tuple[tuple[tuple[str, ExampleFailure], ...], dict[str, int]]] = (
    OrderedDict()
)


def validate_draft(text: str, source: str = "draft") -> DraftCheck:
    """Parse `text` and run every enabled rule's examples in both pipeline modes.

    Raises `PackError` (naming `source`, the rule and the field) for an invalid pack and
    `PublishRefused` listing each failing example with its mode. Example results are
    remembered per text (a few drafts), so the page that shows them and the publish that
    follows run them once; the pipelines are fixed for the life of the process.
    """
    pack = parse_pack(text, source)
    key = hashlib.sha256(text.encode()).hexdigest()
    with _examples_lock:
        cached = _examples.get(key)
    if cached is None:
        failures: list[tuple[str, ExampleFailure]] = []
        counts: dict[str, int] = {}
        for mode in PUBLISH_MODES:
            found, count = run_examples(pack, mode)
            failures.extend((mode, failure) for failure in found)
            counts[mode] = count
        cached = (tuple(failures), counts)
        with _examples_lock:
            _examples[key] = cached
            while len(_examples) > _EXAMPLES_CACHE_SIZE:
                _examples.popitem(last=False)
    failures_found, counts = cached
    if failures_found:
        listed = "\n".join(f"  [{mode}] {failure}" for mode, failure in failures_found)
        raise PublishRefused(
            f"{source}: {len(failures_found)} rule example(s) fail; fix them before "
            f"publishing:\n{listed}",
            failures_found,
        )
    return DraftCheck(pack, dict(counts))
