"""`analyse()`: source text in, findings and action items out. The one entry point the CLI,
the worker and the API call; pure apart from loading the pipeline once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from nlp import limits
from nlp import text as textmod
from nlp.actions import action_sections, check_action_items, systems_action_finding
from nlp.blame import Hit, compile_pack
from nlp.model import Analysis, Block, Finding
from nlp.people import Roster
from nlp.pipeline import get_pipeline
from rules.policy import ActionPolicy
from rules.schema import RulePack, load_pack

_default_pack: RulePack | None = None
# Pack rules whose hits mark an action item as asking people to change ("retrain X").
PERSON_REMEDIATION = "actions.person-remediation"


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
    max_chars: int = limits.MAX_SOURCE_CHARS,
) -> Analysis:
    """Analyse one postmortem. `people` is the incident's roster (names, @handles).

    Raises `limits.TooLarge` for a source over `max_chars`; everything under it is analysed in
    time linear in its length (see nlp/limits.py)."""
    limits.check_size(source, max_chars)
    pack = pack or default_pack()
    policy = policy or ActionPolicy()
    pipeline = get_pipeline(model)
    compiled = compile_pack(pack, pipeline)
    document = textmod.parse(source, fmt, include_blockquotes=include_blockquotes)
    roster = Roster(people)
    findings: list[Finding] = []
    blocks = [b for b in document.blocks if b.text.strip()]
    bounded = {id(block): limits.blank_long_words(block.text) for block in blocks}
    limits.check_words(bounded.values())
    cut = [(block, piece) for block in blocks for piece in limits.pieces(bounded[id(block)])]
    docs = pipeline.nlp.pipe(bounded[id(block)][piece.start : piece.end] for block, piece in cut)
    # The blocks of the action-items sections as the action check finds them, so rules
    # scoped to action items also see a section opened by a bold label or a question.
    in_actions = {
        id(b) for s in action_sections(document, policy) for b in (s.label, *s.blocks)
    }
    for (block, piece), doc in zip(cut, docs, strict=True):
        hits = compiled.run(
            doc,
            roster,
            action_scope=id(block) in in_actions,
            quoted=block.quoted,
        )
        for hit in hits:
            shifted = replace(hit, start=hit.start + piece.start, end=hit.end + piece.start)
            findings.append(_finding(document, block, shifted))
        if piece.cut_mid_sentence:
            findings.append(_long_sentence(document, block, piece.end))
    analysis = Analysis(
        warnings=list(compiled.skipped) + list(getattr(document, "warnings", ())),
        pack_version=f"{pack.name}@{pack.version}",
        model=pipeline.name,
    )
    if check_actions:
        check = check_action_items(document, policy, pack)
        asks_people = [
            (f.start, f.end) for f in findings if f.rule.startswith(PERSON_REMEDIATION)
        ]
        analysis.action_items = [
            replace(item, asks_people=any(a <= s < b for s, _ in asks_people))
            for item, (a, b) in zip(check.items, check.spans, strict=True)
        ]
        findings.extend(check.findings)
        systems = systems_action_finding(
            document, check, analysis.action_items, findings, policy, pack
        )
        if systems is not None:
            if not check.sections:
                findings = [f for f in findings if f.rule != "actions.missing-section"]
            findings.append(systems)
    findings.sort(key=lambda f: (f.start, f.end, f.rule))
    if len(findings) > limits.MAX_FINDINGS:
        findings = findings[: limits.MAX_FINDINGS] + [
            _too_many(document, findings[limits.MAX_FINDINGS], len(findings))
        ]
    analysis.findings = findings
    return analysis


LONG_SENTENCE = "input.long-sentence"
TOO_MANY = "input.too-many-findings"


def _long_sentence(document: textmod.Document, block: Block, at: int) -> Finding:
    """Says where a sentence too long to parse whole was read in two parts, so a reader knows
    the check may have missed something there."""
    start, end = block.source_span(max(at - 1, 0), at)
    return document.finding(
        rule=LONG_SENTENCE,
        category="input",
        severity="info",
        message=(
            f"A sentence here runs past {limits.MAX_PIECE_CHARS:,} characters; it was checked "
            "in parts, so a flag spanning the cut may be missing."
        ),
        suggestion="Could this passage be split into shorter sentences?",
        start=start,
        end=end,
    )


def _too_many(document: textmod.Document, first_dropped: Finding, total: int) -> Finding:
    return document.finding(
        rule=TOO_MANY,
        category="input",
        severity="warning",
        message=(
            f"{total - limits.MAX_FINDINGS:,} more flags from here on are not listed: the "
            f"check keeps the first {limits.MAX_FINDINGS:,} of {total:,}."
        ),
        suggestion="Could this text be checked in smaller parts?",
        start=first_dropped.start,
        end=first_dropped.end,
    )


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
