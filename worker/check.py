"""check_incident: fetch -> check -> persist -> report, for one incident.

The check itself is check.verdict.check (pure); this module is the orchestration around it
and the only place that both talks to a tracker and writes the store.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial

from check import comment
from check.verdict import OK, UNCHECKED, Verdict, check
from connector.base import (
    GITHUB,
    Incident,
    IncidentRef,
    NotFound,
    OutsideScope,
    Postmortem,
    PostmortemRef,
    TrackerError,
)
from nlp.limits import MAX_SOURCE_CHARS
from nlp.model import Analysis
from rules.incident_policy import (
    IncidentPolicy,
    bounded_refs,
    postmortem_refs,
    read_refusal,
    read_scope,
    repository_policy,
    severity_from_labels,
)
from rules.policy import PolicyError
from store import queries
from store.db import session_scope
from worker import metrics

log = logging.getLogger("pmguard.worker")


@dataclass(frozen=True)
class Outcome:
    status: str  # a verdict, or skipped-open / not-incident / exempt / not-allowed
    incident: str
    detail: str = ""


def check_incident(service, ref: IncidentRef, *, reason: str = "closed") -> Outcome:
    tracker = service.trackers.for_ref(ref)
    incident = tracker.fetch_incident(ref)
    if incident.state != "closed":
        return Outcome("skipped-open", ref.id)
    if not service.is_incident(incident):
        return Outcome("not-incident", ref.id)
    policy = _policy_for(service, tracker, ref)
    if not policy.needs_postmortem(incident):
        _record_incident(service, incident, verdict=None)
        return Outcome("exempt", ref.id)
    marker = comment.marker_for(ref.tracker)
    with session_scope(service.sessions) as session:
        waiver = queries.active_waiver(session, ref.id, datetime.now(UTC))
    if waiver is not None:
        # Decided before fetching or analysing: a waived incident needs no postmortem, so
        # an unreadable one must not fail the check either.
        return _report_waived(service, tracker, incident, policy, waiver, reason)
    postmortems: list[Postmortem] = []
    unreadable = []
    # Bounded before anything is read: an incident's text decides how many requests and
    # stored analyses a check makes, so past the cap references are only counted.
    to_read, not_read = bounded_refs(postmortem_refs(incident, bot_marker=marker))
    # A reference is text anyone can write; the service's credentials reach places the
    # incident's author may not read. Decided before the request, checked again by the
    # connector (a Confluence page's space is only known from its answer).
    watched = service.settings.github.repositories if ref.tracker == GITHUB else ()
    scope = read_scope(incident, policy, watched=watched)
    refused: list[PostmortemRef] = []
    for pm_ref in to_read:
        refusal = read_refusal(pm_ref, incident, scope)
        if refusal is not None:
            if refusal.outside:
                refused.append(pm_ref)
            else:
                unreadable.append((pm_ref, refusal.reason))
            continue
        try:
            postmortems.append(tracker.fetch_postmortem(pm_ref, site=ref.site, scope=scope))
        except OutsideScope:
            refused.append(pm_ref)
        except NotFound as exc:
            unreadable.append((pm_ref, str(exc)))
        except TrackerError as exc:
            if exc.transient:
                raise
            unreadable.append((pm_ref, str(exc)))
    with session_scope(service.sessions) as session:
        dismissed = queries.dismissed_fingerprints(session, ref.id)
    # One budget for the whole job, however many postmortems it links.
    deadline = time.monotonic() + service.settings.analysis_timeout
    verdict = check(
        incident, postmortems, policy, service.pack, unreadable=unreadable, dismissed=dismissed,
        analyser=partial(service.analyse, deadline=deadline), not_read=len(not_read),
        refused=refused,
    )
    for finding in verdict.open_findings:
        metrics.FINDINGS.labels(finding.rule).inc()
    _persist(service, incident, verdict, reason)
    body = comment.render(incident, verdict, policy, service.details_url(ref))
    comment_id = tracker.upsert_comment(ref, marker, body)
    label = policy.labels.for_verdict(verdict.status)
    tracker.set_verdict_labels(ref, label, [x for x in policy.labels.all if x != label])
    if policy.enforcement == "reopen" and verdict.status != OK:
        tracker.reopen(ref)
    with session_scope(service.sessions) as session:
        queries.set_reported(session, ref.id, comment_id=comment_id, verdict=verdict.status)
    log.info(
        "checked incident",
        extra={"incident": ref.id, "verdict": verdict.status, "reason": reason},
    )
    return Outcome(verdict.status, ref.id)


WAIVED = "waived"


def _report_waived(
    service, tracker, incident: Incident, policy: IncidentPolicy, waiver: queries.Waiver,
    reason: str,
) -> Outcome:
    """Report an incident whose check an incident manager waived.

    The comment says so, with the reason; the labels treat a waiver like "ok" (the ok
    label on, the missing/needs-review labels off) so a board filtering on the missing or
    needs-review label stops listing it. Policy's `reopen` never applies.
    """
    ref = incident.ref
    now = datetime.now(UTC)
    with session_scope(service.sessions) as session:
        row = queries.upsert_incident(
            session, **_incident_fields(incident), verdict=WAIVED, last_checked_at=now
        )
        queries.audit(
            session,
            actor="pmguard",
            action="check",
            target_type="incident",
            target_id=row.id,
            detail={"verdict": WAIVED, "reason": reason},
        )
    body = waived_comment(incident, waiver, policy)
    comment_id = tracker.upsert_comment(ref, comment.marker_for(ref.tracker), body)
    ok = policy.labels.ok
    tracker.set_verdict_labels(ref, ok, [x for x in policy.labels.all if x != ok])
    with session_scope(service.sessions) as session:
        queries.set_reported(session, ref.id, comment_id=comment_id, verdict=WAIVED)
    log.info("checked incident", extra={"incident": ref.id, "verdict": WAIVED, "reason": reason})
    return Outcome(WAIVED, ref.id)


_MENTION = re.compile(r"@(?=[A-Za-z0-9])")


def waived_comment(incident: Incident, waiver: queries.Waiver, policy: IncidentPolicy) -> str:
    """The sticky comment for a waived check: thanks, the reason, when the waiver ends.

    Never names the reviewer (the dashboard's audit log does): the comment is about the
    incident, not about who decided. An @mention in the reason would notify that person
    from the bot's comment, so a zero-width space after "@" (GitHub) or in "[~" (Jira)
    keeps it as text.
    """
    github = incident.ref.tracker == GITHUB
    text = " ".join(waiver.reason.split())
    text = _MENTION.sub("@\u200b", text) if github else text.replace("[~", "[\u200b~")
    until = f" until {waiver.last_day.isoformat()}" if waiver.last_day else ""
    command = f"`{policy.recheck_command}`" if github else "{{" + policy.recheck_command + "}}"
    lines = [
        f"Thanks for closing this incident. An incident manager waived the postmortem check "
        f"for it{until}, with this reason:",
        "",
        f"> {text}" if github else f"bq. {text}",
        "",
    ]
    if waiver.last_day:
        lines.append(
            f"Nothing more is needed here until then. After {waiver.last_day.isoformat()}, "
            f"editing the postmortem or commenting {command} checks it again."
        )
    else:
        lines.append("Nothing more is needed here.")
    lines.append(comment.marker_for(incident.ref.tracker))
    return "\n".join(lines)


def _policy_for(service, tracker, ref: IncidentRef) -> IncidentPolicy:
    if ref.tracker != GITHUB:
        return service.policy
    try:
        text = tracker.repo_config(ref.project)
        return repository_policy(text, service.policy, f"{ref.project}/.github/pmguard.yml")
    except PolicyError as exc:
        # A broken repository policy must not stop the check; the service policy applies and
        # the problem is logged for the repository's maintainers.
        log.warning("ignoring repository policy: %s", exc, extra={"incident": ref.id})
        return service.policy


def _record_incident(service, incident: Incident, verdict: str | None) -> None:
    with session_scope(service.sessions) as session:
        queries.upsert_incident(session, **_incident_fields(incident), verdict=verdict)


def _incident_fields(incident: Incident) -> dict:
    ref = incident.ref
    return {
        "id": ref.id,
        "tracker": ref.tracker,
        "site": ref.site,
        "project": ref.project,
        "key": ref.key,
        "title": incident.title,
        "url": incident.url,
        "state": incident.state,
        "closed_at": incident.closed_at,
        "severity": incident.severity or severity_from_labels(incident.labels),
    }


def _persist(service, incident: Incident, verdict: Verdict, reason: str) -> None:
    now = datetime.now(UTC)
    with session_scope(service.sessions) as session:
        row = queries.upsert_incident(
            session, **_incident_fields(incident), verdict=verdict.status, last_checked_at=now
        )
        analysed = [
            (c.postmortem, verdict.status, c.analysis, {"open": len(c.open_findings)})
            for c in verdict.checks
        ]
        # An unchecked postmortem's text is kept (up to the size limit) so a reviewer can
        # read what the check could not.
        refused = [
            (replace(pm, text=pm.text[:MAX_SOURCE_CHARS]), UNCHECKED, Analysis(),
             {"open": 0, "unchecked": why})
            for pm, why in verdict.unchecked
        ]
        for pm, status, analysis, summary in analysed + refused:
            pm_row = queries.link_postmortem(
                session,
                row,
                tracker=incident.ref.tracker,
                site=incident.ref.site,
                kind=pm.ref.kind,
                locator=pm.ref.locator,
                url=pm.url,
                title=pm.title,
            )
            queries.save_analysis(
                session,
                incident_id=row.id,
                postmortem_id=pm_row.id,
                text=pm.text,
                format=pm.format,
                pack_name=service.pack.name,
                pack_version=service.pack.version,
                model=analysis.model,
                verdict=status,
                findings=[
                    {**f.to_dict(), "start": f.start, "end": f.end, "sentence": f.sentence,
                     "fingerprint": f.fingerprint}
                    for f in analysis.findings
                ],
                action_items=[a.to_dict() for a in analysis.action_items],
                summary={**summary, "reason": reason, "source": pm.source},
            )
        queries.audit(
            session,
            actor="pmguard",
            action="check",
            target_type="incident",
            target_id=row.id,
            detail={"verdict": verdict.status, "reason": reason},
        )

