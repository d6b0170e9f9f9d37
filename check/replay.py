"""Replay a draft rule pack on stored postmortems: which flags it would add and remove
compared with the pack in force.

Pure apart from loading the spaCy pipeline (through nlp.analyse). Loading the stored texts
is the store's business (store.packs.recent_postmortem_texts); worker.tuning joins the two.

Cost: every postmortem is analysed twice, once per pack. With the trained English
pipeline that is roughly 50 ms per pack for a 1.5 KB postmortem on one core and grows
linearly with length (the parse dominates; the rule matchers are cheap), so 200 typical
postmortems take tens of seconds. Callers bound the set (MAX_REPLAY) and should run large
replays off the request path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from nlp.analysis import analyse
from nlp.limits import Unchecked
from nlp.model import Analysis, Finding
from rules.policy import ActionPolicy
from rules.replay_input import MAX_REPLAY, StoredText
from rules.schema import RulePack


@dataclass(frozen=True)
class ReplayFlag:
    rule: str
    line: int
    text: str
    severity: str
    sentence: str
    fingerprint: str
    decision: str | None = None  # the reviewers' decision on this flag, if any
    previous_severity: str | None = None  # set on re-levelled flags only


@dataclass(frozen=True)
class ReplayResult:
    postmortem_id: str
    incident_id: str
    title: str
    added: tuple[ReplayFlag, ...]  # flags the draft raises that the current pack does not
    removed: tuple[ReplayFlag, ...]  # flags the current pack raises that the draft does not
    relevelled: tuple[ReplayFlag, ...]  # same flag, different severity (draft's severity)
    current_count: int  # flags under the current pack
    draft_count: int  # flags under the draft

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.relevelled)


def replay(
    draft: RulePack,
    current: RulePack,
    postmortems: Sequence[StoredText],
    *,
    model: str | None = None,
    policy: ActionPolicy | None = None,
    analyser: Callable[..., Analysis] = analyse,
) -> list[ReplayResult]:
    """Per postmortem (in the given order), the difference the draft would make.

    Findings are matched by fingerprint (rule id + sentence), the identity reviewers'
    decisions hang on, counted as multisets so a sentence repeated in a postmortem counts
    each time. Inline-suppressed findings are left out on both sides (nobody sees them),
    and so are the structural action-item findings, which do not depend on the pack.
    Raises ValueError above MAX_REPLAY postmortems. A postmortem `analyser` leaves unchecked
    (too large, over the time budget) is left out: there is nothing to compare.
    """
    if len(postmortems) > MAX_REPLAY:
        raise ValueError(f"replay at most {MAX_REPLAY} postmortems at once")
    out = []
    for pm in postmortems:
        try:
            out.append(_replay_one(draft, current, pm, model, policy, analyser))
        except Unchecked:
            continue
    return out


def _replay_one(
    draft: RulePack,
    current: RulePack,
    pm: StoredText,
    model: str | None,
    policy: ActionPolicy | None,
    analyser: Callable[..., Analysis],
) -> ReplayResult:
    before = _flags(current, pm, model, policy, analyser)
    after = _flags(draft, pm, model, policy, analyser)
    before_fps = Counter(f.fingerprint for f in before)
    after_fps = Counter(f.fingerprint for f in after)
    added = _beyond(after, before_fps, pm.decisions)
    removed = _beyond(before, after_fps, pm.decisions)
    before_severity = {f.fingerprint: f.severity for f in before}
    relevelled = tuple(
        _flag(f, pm.decisions, previous_severity=before_severity[f.fingerprint])
        for f in _unique(after)
        if f.fingerprint in before_severity and before_severity[f.fingerprint] != f.severity
    )
    return ReplayResult(
        postmortem_id=pm.postmortem_id,
        incident_id=pm.incident_id,
        title=pm.title,
        added=added,
        removed=removed,
        relevelled=relevelled,
        current_count=len(before),
        draft_count=len(after),
    )


def _flags(
    pack: RulePack,
    pm: StoredText,
    model: str | None,
    policy: ActionPolicy | None,
    analyser: Callable[..., Analysis],
) -> list[Finding]:
    analysis = analyser(
        pm.text,
        fmt=pm.format or "markdown",
        pack=pack,
        people=pm.roster,
        policy=policy,
        model=model,
        check_actions=False,
    )
    return [f for f in analysis.findings if not f.suppressed]


def _beyond(
    findings: list[Finding], other: Counter[str], decisions: Mapping[str, str]
) -> tuple[ReplayFlag, ...]:
    """The findings not matched by an occurrence of their fingerprint in `other`."""
    remaining = Counter(other)
    out = []
    for f in findings:
        if remaining[f.fingerprint] > 0:
            remaining[f.fingerprint] -= 1
        else:
            out.append(_flag(f, decisions))
    return tuple(out)


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[str] = set()
    out = []
    for f in findings:
        if f.fingerprint not in seen:
            seen.add(f.fingerprint)
            out.append(f)
    return out


def _flag(
    f: Finding, decisions: Mapping[str, str], previous_severity: str | None = None
) -> ReplayFlag:
    return ReplayFlag(
        rule=f.rule,
        line=f.line,
        text=f.text,
        severity=f.severity,
        sentence=f.sentence,
        fingerprint=f.fingerprint,
        decision=decisions.get(f.fingerprint),
        previous_severity=previous_severity,
    )


def summarise(results: Sequence[ReplayResult]) -> dict[str, int]:
    """Totals for the top of the replay page."""
    return {
        "postmortems": len(results),
        "changed": sum(1 for r in results if r.changed),
        "added": sum(len(r.added) for r in results),
        "removed": sum(len(r.removed) for r in results),
        "relevelled": sum(len(r.relevelled) for r in results),
        "removed_false_positives": sum(
            1 for r in results for f in r.removed if f.decision == "false-positive"
        ),
        "removed_accepted": sum(1 for r in results for f in r.removed if f.decision == "accepted"),
    }
