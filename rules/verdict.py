"""The functional core: check(incident, postmortems, policy, pack) -> Verdict. No I/O.

"missing": no postmortem could be read; "needs-review": a postmortem has unsuppressed,
undismissed findings at or above the policy's review level (blame language, or action items
that policy requires); "ok": otherwise.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from connector.base import Incident, Postmortem, PostmortemRef
from nlp.analysis import analyse
from nlp.model import Analysis, Finding, severity_rank
from rules.incident_policy import IncidentPolicy
from rules.schema import RulePack

MISSING = "missing"
NEEDS_REVIEW = "needs-review"
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
    not_read: int = 0,
    refused: Sequence[PostmortemRef] = (),
) -> Verdict:
    """`dismissed` holds fingerprints reviewers marked false positive or waived; `not_read`
    counts references past the cap on how many one check reads; `refused` are references
    outside the allowed places."""
    if not postmortems:
        return Verdict(MISSING, (), tuple(unreadable), not_read, tuple(refused))
    threshold = severity_rank(policy.review_at)
    checks = []
    for pm in postmortems:
        analysis = analyse(
            pm.text,
            fmt=pm.format,
            pack=pack,
            people=incident.roster,
            policy=policy.actions,
        )
        open_findings = tuple(
            f
            for f in analysis.findings
            if not f.suppressed
            and f.fingerprint not in dismissed
            and severity_rank(f.severity) >= threshold
        )
        checks.append(PostmortemCheck(pm, analysis, open_findings))
    status = NEEDS_REVIEW if any(c.open_findings for c in checks) else OK
    return Verdict(status, tuple(checks), tuple(unreadable), not_read, tuple(refused))
