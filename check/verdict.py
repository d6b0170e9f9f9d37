"""The functional core: check(incident, postmortems, policy, pack) -> Verdict. No I/O.

"missing": no postmortem could be read; "needs-review": a postmortem has unsuppressed,
undismissed findings at or above the policy's review level (blame language, or action items
that policy requires); "unchecked": none has such findings, but one could not be analysed
(too large, or over the time budget) and a person has to read it; "ok": otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from connector.base import Incident, Postmortem, PostmortemRef
from nlp.analysis import analyse
from nlp.limits import Unchecked
from nlp.model import Analysis, Finding, severity_rank
from rules.incident_policy import IncidentPolicy
from rules.schema import RulePack

MISSING = "missing"
NEEDS_REVIEW = "needs-review"
UNCHECKED = "unchecked"
OK = "ok"


@dataclass(frozen=True)
class PostmortemCheck:
    postmortem: Postmortem
    analysis: Analysis
    open_findings: tuple[Finding, ...]  # what the verdict and the comment are about


@dataclass(frozen=True)
class Verdict:
    status: str
    checks: tuple[PostmortemCheck, ...]
    unreadable: tuple[tuple[PostmortemRef, str], ...] = ()
    # Read, but not analysed: too large, or stopped at the time budget (the reason says).
    unchecked: tuple[tuple[Postmortem, str], ...] = ()
    # References past MAX_POSTMORTEM_REFS: reported, never read.
    not_read: int = 0
    # References outside the allowed places (rules.incident_policy.read_scope): never read,
    # so nothing of them is known but the reference itself.
    refused: tuple[PostmortemRef, ...] = ()

    @property
    def open_findings(self) -> tuple[Finding, ...]:
        return tuple(f for c in self.checks for f in c.open_findings)


def check(
    incident: Incident,
    postmortems: Sequence[Postmortem],
    policy: IncidentPolicy,
    pack: RulePack | None = None,
    *,
    unreadable: Sequence[tuple[PostmortemRef, str]] = (),
    dismissed: Collection[str] = (),
    model: str | None = None,
    analyser: Callable[..., Analysis] = analyse,
    not_read: int = 0,
    refused: Sequence[PostmortemRef] = (),
) -> Verdict:
    """`dismissed` holds fingerprints reviewers marked false positive or waived; `not_read`
    counts references past the cap on how many one check reads; `refused` are references
    outside the allowed places.

    `analyser` is `nlp.analysis.analyse` or a stand-in with its signature (the service runs
    it in worker processes under a time budget); one raising `Unchecked` leaves that
    postmortem unchecked, with the reason, rather than failing the check."""
    if not postmortems:
        return Verdict(
            MISSING, (), tuple(unreadable), not_read=not_read, refused=tuple(refused)
        )
    threshold = severity_rank(policy.review_at)
    checks = []
    unchecked = []
    for pm in postmortems:
        try:
            analysis = analyser(
                pm.text,
                fmt=pm.format,
                pack=pack,
                people=incident.roster,
                policy=policy.actions_for(incident),
                model=model,
            )
        except Unchecked as reason:
            unchecked.append((pm, str(reason)))
            continue
        open_findings = tuple(
            f
            for f in analysis.findings
            if not f.suppressed
            and f.fingerprint not in dismissed
            and severity_rank(f.severity) >= threshold
        )
        checks.append(PostmortemCheck(pm, analysis, open_findings))
    if any(c.open_findings for c in checks):
        status = NEEDS_REVIEW
    elif unchecked:
        status = UNCHECKED
    else:
        status = OK
    return Verdict(
        status, tuple(checks), tuple(unreadable), tuple(unchecked), not_read=not_read,
        refused=tuple(refused),
    )
