"""`analyse()`: source text in, findings and action items out. The one entry point the CLI,
the worker and the API call; pure apart from loading the pipeline once."""

from __future__ import annotations

from collections.abc import Sequence

from nlp import text as textmod
from nlp.actions import check_action_items, in_action_section
from nlp.blame import Hit, compile_pack
from nlp.model import Analysis, Block, Finding
from nlp.people import Roster
from nlp.pipeline import get_pipeline
from rules.policy import ActionPolicy
from rules.schema import RulePack, load_pack

_default_pack: RulePack | None = None


def default_pack() -> RulePack:
    global _default_pack
    if _default_pack is None:
        _default_pack = load_pack(None)
    return _default_pack


def analyse(
    source: str,
    *,
    fmt: str = "markdown",
    pack: RulePack | None = None,
    people: Sequence[str] = (),
    policy: ActionPolicy | None = None,
    model: str | None = None,
    include_blockquotes: bool = True,
    check_actions: bool = True,
) -> Analysis:
    """Analyse one postmortem. `people` is the incident's roster (names, @handles)."""
    pack = pack or default_pack()
    policy = policy or ActionPolicy()
    pipeline = get_pipeline(model)
    compiled = compile_pack(pack, pipeline)
    document = textmod.parse(source, fmt, include_blockquotes=include_blockquotes)
    roster = Roster(people)
    findings: list[Finding] = []
    blocks = [b for b in document.blocks if b.text.strip()]
    docs = pipeline.nlp.pipe(b.text for b in blocks)
    action_scope: dict[str, bool] = {}  # by section heading; headings repeat across blocks
    for block, doc in zip(blocks, docs, strict=True):
        if block.section not in action_scope:
            action_scope[block.section] = in_action_section(block, policy)
        hits = compiled.run(
            doc,
            roster,
            action_scope=action_scope[block.section],
            quoted=block.quoted,
        )
        for hit in hits:
            findings.append(_finding(document, block, hit))
    analysis = Analysis(
        warnings=list(compiled.skipped) + list(getattr(document, "warnings", ())),
        pack_version=f"{pack.name}@{pack.version}",
        model=pipeline.name,
    )
    if check_actions:
        check = check_action_items(document, policy)
        analysis.action_items = list(check.items)
        findings.extend(check.findings)
    findings.sort(key=lambda f: (f.start, f.end, f.rule))
    analysis.findings = findings
    return analysis


def _finding(document: textmod.Document, block: Block, hit: Hit) -> Finding:
    start, end = block.source_span(hit.start, hit.end)
    return document.finding(
        rule=hit.rule.id,
        category=hit.rule.category,
        severity=hit.severity,
        message=hit.rule.message,
        suggestion=hit.suggestion,
        start=start,
        end=end,
        sentence=hit.sentence,
    )
