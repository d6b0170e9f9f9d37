"""The trained blame classifier: the shipped model is the one its data builds, the data never
overlaps the held-out sets, and the pack's model rules behave as rules do."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import pytest

from check.examples import matches
from nlp.analysis import analyse
from nlp.blame import compile_pack
from nlp.classifier import MODEL_DIR, get_classifier
from nlp.pipeline import get_pipeline
from rules.schema import PackError, load_pack, parse_pack
from training import build

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = sorted((ROOT / "bench" / "data").glob("heldout*.tsv")) + sorted(
    (ROOT / "bench" / "data").glob("fresh*.tsv")
)


def test_the_shipped_model_was_built_from_the_data_and_config_in_the_repo() -> None:
    # A change to training/data/, to a rule's examples or to the config needs `make model`
    # in the same commit.
    record = json.loads((MODEL_DIR / "TRAINING.json").read_text(encoding="utf-8"))
    assert {k: record[k] for k in build.fingerprint()} == build.fingerprint(), (
        "nlp/models/blame_classifier is stale: run `make model`"
    )
    assert tuple(record["classes"]) == build.CLASSES
    assert set(get_classifier().labels) == set(build.CLASSES)


# The model rules are off in the shipped pack (docs/quality.md says why); their examples
# are still the rules' tests, run here with the rules on. Known failures are listed, not
# hidden: each is a case the classifier gets wrong today.
_SHIPPED = load_pack()
ENABLED = dataclasses.replace(_SHIPPED, rules=tuple(
    dataclasses.replace(r, enabled=True) if r.model else r for r in _SHIPPED.rules
))
KNOWN_WRONG = {
    # A named person's neutral recovery step read as harm: the commonest false flag on
    # real text, and why the rules ship off.
    ("model.agent-harm", "Rahel rolled the deploy back and paged the database team."),
}
MODEL_CASES = [
    pytest.param(
        rule.id, text, expected,
        id=f"{rule.id}:{'match' if expected else 'no'}:{n}",
        marks=[pytest.mark.xfail(strict=True, reason="the classifier gets this wrong today")]
        if (rule.id, text) in KNOWN_WRONG else [],
    )
    for rule in ENABLED.rules
    if rule.model
    for expected, examples in ((True, rule.examples_match), (False, rule.examples_no_match))
    for n, text in enumerate(examples)
]


@pytest.mark.parametrize(("rule_id", "text", "expected"), MODEL_CASES)
@pytest.mark.parametrize("mode", ["auto", "blank"], ids=["trained", "blank"])
def test_model_rule_examples(mode: str, rule_id: str, text: str, expected: bool) -> None:
    compiled = compile_pack(ENABLED, get_pipeline(mode))
    assert matches(compiled, rule_id, text) is expected


def _fold(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.casefold()).strip()


def test_no_training_sentence_is_in_a_held_out_set() -> None:
    # The held-out sets measure the detector; a sentence in both would measure memory.
    # (Stock headings of three words or fewer, "What went wrong", are everywhere.)
    training = {_fold(t) for t, _cls in build.examples() if len(_fold(t).split()) > 3}
    for path in HELDOUT:
        with path.open(encoding="utf-8") as f:
            shared = [r["sentence"] for r in csv.DictReader(f, delimiter="\t")
                      if _fold(r["sentence"]) in training]
        assert shared == [], f"{path.name} shares sentences with the training data"


def test_a_flag_from_the_classifier_names_its_class_and_keeps_offsets() -> None:
    source = "## What happened\n\nThe cache expired.\n\nMarta blew away the prod namespace, " \
             "and the API was down for an hour.\n"
    flags = [f for f in analyse(source, pack=ENABLED, model="blank", check_actions=False)
             .findings if f.rule.startswith("model.")]
    assert flags
    for flag in flags:
        assert flag.category in ("agent-harm", "possessive", "self-blame", "judgemental")
        assert source[flag.start : flag.end] == flag.text
        assert "Marta" not in flag.suggestion  # a question about the system, never a name


def test_sentences_without_a_person_are_never_flagged_by_the_classifier() -> None:
    source = ("The batch job deleted the staging bucket, which took the reports offline. "
              "A glance at the queue graph would have shown the backlog.")
    assert not [f for f in analyse(source, pack=ENABLED, model="blank", check_actions=False)
                .findings if f.rule.startswith("model.")]


MODEL_RULE = """
name: t
version: "1"
rules:
  - id: test.model
    model: {model}
    class: {cls}
    threshold: {threshold}
    category: agent-harm
    severity: warning
    message: "Which step made this possible?"
    explanation: "A test rule."
    suggestion: "What made this possible?"
    examples:
      match: ["a", "b"]
      no_match: ["c", "d"]
"""


@pytest.mark.parametrize(
    ("model", "cls", "threshold", "words"),
    [
        ("blame_classifier", "NOPE", 0.8, "field 'class'"),
        ("gpt", "AGENT_HARM", 0.8, "field 'model'"),
        ("blame_classifier", "AGENT_HARM", 1.5, "field 'threshold'"),
        ("blame_classifier", "AGENT_HARM", "high", "field 'threshold'"),
    ],
)
def test_model_rules_are_checked_like_any_rule(
    model: str, cls: str, threshold: object, words: str
) -> None:
    with pytest.raises(PackError, match=re.escape(words)):
        parse_pack(MODEL_RULE.format(model=model, cls=cls, threshold=threshold), "t.yml")


def test_a_pack_can_turn_a_model_rule_on_and_raise_its_threshold() -> None:
    pack = parse_pack(
        "extends: default\nrules:\n  - id: model.agent-harm\n    enabled: true\n"
        "    threshold: 0.99\n", "mine.yml"
    )
    assert pack.rule("model.agent-harm").threshold == 0.99
    assert "model.agent-harm" in {r.id for r in pack.active}
    assert "model.heroics" not in {r.id for r in pack.active}  # still off, as shipped


def test_a_model_rules_context_is_a_cue_the_sentence_must_carry() -> None:
    # `context` patterns gate a prediction on a structural cue (here: a word of harm or
    # deviation), which is how a pack keeps the classifier from flagging a neutral step.
    gated = parse_pack(
        "extends: default\nrules:\n  - id: model.agent-harm\n    enabled: true\n"
        "    context:\n      - [{LOWER: {IN: [down, prod, wrong, without, deleted]}}]\n",
        "gated.yml",
    )
    neutral = "Rahel rolled the deploy back and paged the database team."
    harmful = "Our contractor pushed the wrong config to prod and checkout went down."
    compiled = compile_pack(gated, get_pipeline("blank"))
    assert matches(compile_pack(ENABLED, get_pipeline("blank")), "model.agent-harm", neutral)
    assert not matches(compiled, "model.agent-harm", neutral)
    assert matches(compiled, "model.agent-harm", harmful)
