"""The reads and writes the web layer and the worker need, each taking a Session.

None of these commit: the caller's `session_scope` decides the transaction, so a webhook
can record its delivery and enqueue its job atomically. Job lifecycle functions live in
store.jobs and are re-exported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from connector.base import IncidentRef
from store.fingerprint import fingerprint
from store.jobs import (
    JobStateError,
    create_job,
    fail_job,
    failed_jobs,
    finish_job,
    first_job_at,
    orphaned_jobs,
    pending_jobs,
    recent_jobs,
    requeue_job,
    retry_job,
    start_job,
)
from store.models import (
    DECISIONS,
    Analysis,
    AuditEntry,
    Delivery,
    Finding,
    Incident,
    Job,
    Postmortem,
)
from store.types import utcnow

__all__ = [
    "JobStateError",
    "audit",
    "create_job",
    "decide_finding",
    "checked_since",
    "check_pending",
    "decisions_for",
    "dismissed_fingerprints",
    "fail_job",
    "failed_jobs",
    "first_job_at",
    "orphaned_jobs",
    "recent_jobs",
    "finish_job",
    "incident_key",
    "incidents_by_postmortem",
    "incidents_by_postmortem_locator",
    "latest_analysis",
    "link_postmortem",
    "pending_jobs",
    "postmortem_key",
    "record_delivery",
    "requeue_job",
    "retry_job",
    "save_analysis",
    "set_postmortems",
    "set_reported",
    "start_job",
    "upsert_incident",
]

# Columns a caller may set through upsert_incident(**attrs); identity columns and
# timestamps the store maintains are excluded.
_INCIDENT_ATTRS = frozenset(
    {
        "title",
        "url",
        "state",
        "closed_at",
        "severity",
        "team",
        "verdict",
        "comment_id",
        "last_checked_at",
        "waived_by",
        "waived_reason",
        "waived_until",
    }
)
_FINDING_FIELDS = (
    "rule",
    "category",
    "severity",
    "message",
    "suggestion",
    "text",
    "sentence",
    "start",
    "end",
    "line",
    "column",
    "end_line",
    "end_column",
    "suppressed",
    "justification",
)


# --- deliveries -------------------------------------------------------------------------


def record_delivery(
    session: Session,
    source: str,
    delivery_id: str,
    event: str,
    outcome: str,
    incident_id: str | None = None,
) -> bool:
    """Record a webhook delivery; False when this (source, delivery_id) was seen before.

    Race-safe: the unique constraint decides, not a prior SELECT, so of any number of
    concurrent redeliveries exactly one gets True. The insert runs in a savepoint, so a
    duplicate leaves the caller's transaction usable.
    """
    if not delivery_id:
        raise ValueError("a delivery needs its delivery id (the idempotency key)")
    delivery = Delivery(
        source=source,
        delivery_id=delivery_id,
        event=event,
        outcome=outcome,
        incident_id=incident_id,
    )
    try:
        with session.begin_nested():
            session.add(delivery)
    except IntegrityError:
        # Only a duplicate key means "seen before"; anything else is a real error.
        if _delivery_exists(session, source, delivery_id):
            return False
        raise
    return True


def _delivery_exists(session: Session, source: str, delivery_id: str) -> bool:
    query = select(Delivery.id).where(
        Delivery.source == source, Delivery.delivery_id == delivery_id
    )
    return session.scalar(query) is not None


# --- incidents and postmortems ----------------------------------------------------------


def incident_key(tracker: str, site: str, project: str, key: str) -> str:
    """The store's id for an incident: the same string as `IncidentRef.id`."""
    return IncidentRef(tracker=tracker, site=site, project=project, key=key).id


def upsert_incident(
    session: Session, tracker: str, site: str, project: str, key: str, **attrs: Any
) -> Incident:
    """Create or update the incident identified by its reference fields.

    `attrs` are Incident columns (title, url, state, closed_at, severity, team, verdict,
    comment_id, last_checked_at, waiver fields); unknown names raise TypeError. An `id`
    may be passed along but must be the one the reference fields give.
    """
    incident_id = incident_key(tracker, site, project, key)
    given_id = attrs.pop("id", None)
    if given_id is not None and given_id != incident_id:
        raise ValueError(f"incident id {given_id!r} does not match its reference {incident_id!r}")
    unknown = set(attrs) - _INCIDENT_ATTRS
    if unknown:
        raise TypeError(f"upsert_incident: unknown incident fields {sorted(unknown)}")
    incident = session.get(Incident, incident_id)
    if incident is None:
        incident = Incident(
            id=incident_id, tracker=tracker, site=site.rstrip("/"), project=project, key=key
        )
        for name, value in attrs.items():
            setattr(incident, name, value)
        try:
            with session.begin_nested():
                session.add(incident)
            return incident
        except IntegrityError:
            # Another transaction created it first: fall through and update theirs.
            incident = session.get(Incident, incident_id, populate_existing=True)
            if incident is None:
                raise
    for name, value in attrs.items():
        setattr(incident, name, value)
    session.flush()
    return incident


def postmortem_key(tracker: str, site: str, kind: str, locator: str) -> str:
    """The store's id for a postmortem: where it lives, independent of who links it."""
    return f"{tracker}:{site.rstrip('/')}:{kind}:{locator}"


def link_postmortem(
    session: Session,
    incident: Incident,
    postmortem_fields: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Postmortem:
    """Get or create the postmortem and link it to `incident` (idempotent).

    Fields, as a mapping and/or keywords: kind and locator (required), url, title, and
    tracker and site (default: the incident's; a Confluence page shares its Jira site's
    credentials). An `id` may be given; by default it is `postmortem_key(...)`.
    """
    merged = {**(postmortem_fields or {}), **fields}
    postmortem = _get_or_create_postmortem(session, incident, merged)
    if postmortem not in incident.postmortems:
        incident.postmortems.append(postmortem)
    session.flush()
    return postmortem


def set_postmortems(
    session: Session, incident: Incident, postmortems: Iterable[Mapping[str, Any]]
) -> list[Postmortem]:
    """Make `postmortems` exactly the incident's linked set, unlinking any it no longer
    links (the postmortem rows themselves stay: other incidents may link them)."""
    wanted = [_get_or_create_postmortem(session, incident, fields) for fields in postmortems]
    incident.postmortems = list(dict.fromkeys(wanted))
    session.flush()
    return list(incident.postmortems)


def _get_or_create_postmortem(
    session: Session, incident: Incident, fields: Mapping[str, Any]
) -> Postmortem:
    tracker = fields.get("tracker") or incident.tracker
    site = (fields.get("site") or incident.site).rstrip("/")
    kind, locator = fields["kind"], fields["locator"]
    postmortem_id = fields.get("id") or postmortem_key(tracker, site, kind, locator)
    postmortem = session.get(Postmortem, postmortem_id)
    if postmortem is None:
        postmortem = Postmortem(
            id=postmortem_id, tracker=tracker, site=site, kind=kind, locator=locator
        )
        try:
            with session.begin_nested():
                session.add(postmortem)
        except IntegrityError:
            postmortem = session.get(Postmortem, postmortem_id, populate_existing=True)
            if postmortem is None:
                raise
    # A retitled postmortem or a moved URL replaces what was stored; blanks never erase.
    for name in ("url", "title"):
        if fields.get(name):
            setattr(postmortem, name, fields[name])
    return postmortem


def set_reported(
    session: Session, incident_id: str, comment_id: str | None, verdict: str | None
) -> Incident:
    """Remember the sticky comment and the verdict the tracker now shows."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise LookupError(f"no incident {incident_id}")
    incident.comment_id = comment_id
    incident.verdict = verdict
    session.flush()
    return incident


def checked_since(session: Session, incident_id: str, since: datetime) -> bool:
    """Whether the incident was checked at or after `since` (reconcile skips those)."""
    query = select(Incident.last_checked_at).where(Incident.id == incident_id)
    checked = session.scalar(query)
    return checked is not None and checked >= since


def check_pending(session: Session, incident_id: str) -> bool:
    """Whether a job for the incident is queued or running (reconcile leaves it be)."""
    query = select(Job.id).where(
        Job.incident_id == incident_id, Job.status.in_(("queued", "running"))
    ).limit(1)
    return session.scalar(query) is not None


def incidents_by_postmortem_locator(session: Session, ref: IncidentRef) -> list[Incident]:
    """Incidents linking the postmortem *issue* `ref` (a webhook says it was edited).

    An issue postmortem's locator is the issue's display form: "owner/repo#12" on
    GitHub, "OPS-7" on Jira, as the connectors write it in `PostmortemRef.locator`.
    """
    query = (
        select(Incident)
        .join(Incident.postmortems)
        .where(
            Postmortem.tracker == ref.tracker,
            Postmortem.site == ref.site.rstrip("/"),
            Postmortem.kind == "issue",
            Postmortem.locator == ref.display,
        )
        .order_by(Incident.id)
    )
    return list(session.scalars(query).unique())


def incidents_by_postmortem(session: Session, postmortem_id: str) -> list[Incident]:
    """Every incident linking this postmortem: the ones to re-check when it is edited."""
    query = (
        select(Incident)
        .join(Incident.postmortems)
        .where(Postmortem.id == postmortem_id)
        .order_by(Incident.id)
    )
    return list(session.scalars(query))


# --- analyses, findings and decisions ---------------------------------------------------


def save_analysis(
    session: Session,
    incident_id: str,
    postmortem_id: str | None,
    text: str,
    format: str,
    pack_name: str,
    pack_version: str,
    model: str,
    verdict: str,
    findings: Iterable[Mapping[str, Any] | Any],
    action_items: Iterable[Mapping[str, Any] | Any],
    summary: Mapping[str, Any],
) -> Analysis:
    """Store one check of an incident with its findings.

    Findings and action items may be dicts or the nlp records (dataclasses). A finding
    whose fingerprint had a reviewer's decision in the incident's earlier analyses gets
    that decision (with its author, time and reason), so re-checking an edited
    postmortem does not ask reviewers the same question twice.
    """
    new_findings = [_finding(raw) for raw in findings]
    previous = _latest_decided(session, incident_id, [f.fingerprint for f in new_findings])
    analysis = Analysis(
        incident_id=incident_id,
        postmortem_id=postmortem_id,
        text=text,
        format=format,
        pack_name=pack_name,
        pack_version=pack_version,
        model=model,
        verdict=verdict,
        action_items=[_as_dict(item) for item in action_items],
        summary=dict(summary),
    )
    for finding in new_findings:
        decided = previous.get(finding.fingerprint)
        if decided is not None:
            finding.decision = decided.decision
            finding.decided_by = decided.decided_by
            finding.decided_at = decided.decided_at
            finding.reason = decided.reason
        analysis.findings.append(finding)
    session.add(analysis)
    session.flush()
    return analysis


def _as_dict(record: Mapping[str, Any] | Any) -> dict[str, Any]:
    if isinstance(record, Mapping):
        return dict(record)
    if hasattr(record, "to_dict"):
        return dict(record.to_dict())
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.asdict(record)
    raise TypeError(f"cannot store {type(record).__name__}: expected a dict or a dataclass")


def _finding(raw: Mapping[str, Any] | Any) -> Finding:
    if isinstance(raw, Mapping):
        fields = dict(raw)
    elif dataclasses.is_dataclass(raw) and not isinstance(raw, type):
        # Not to_dict(): that drops the offsets and the sentence the store keeps.
        fields = dataclasses.asdict(raw)
    else:
        raise TypeError(f"cannot store finding {type(raw).__name__}")
    values = {name: fields[name] for name in _FINDING_FIELDS if fields.get(name) is not None}
    if "rule" not in values:
        raise ValueError("a finding needs its rule id")
    values["fingerprint"] = fields.get("fingerprint") or fingerprint(
        values["rule"], values.get("sentence", ""), values.get("text", "")
    )
    return Finding(**values)


def _latest_decided(
    session: Session, incident_id: str, fingerprints: Iterable[str] | None = None
) -> dict[str, Finding]:
    """Per fingerprint, the decided finding from the newest analysis that has it.

    Newest-analysis-wins (not newest-decision-wins) so that a reviewer undoing a decision
    on the current analysis is not overridden by an older one; within one analysis the
    most recent decision wins when a rule flagged one sentence twice.
    """
    query = (
        select(Finding)
        .join(Finding.analysis)
        .where(Analysis.incident_id == incident_id)
        .order_by(Analysis.id.desc(), Finding.id)
    )
    if fingerprints is not None:
        query = query.where(Finding.fingerprint.in_(set(fingerprints)))
    newest_analysis: dict[str, int] = {}
    decided: dict[str, Finding] = {}
    for finding in session.scalars(query):
        fp = finding.fingerprint
        if newest_analysis.setdefault(fp, finding.analysis_id) != finding.analysis_id:
            continue  # an older analysis: the newest one with this fingerprint rules
        if finding.decision is None:
            continue
        current = decided.get(fp)
        if current is None or _decided_later(finding, current):
            decided[fp] = finding
    return decided


def _decided_later(a: Finding, b: Finding) -> bool:
    if a.decided_at is None or b.decided_at is None:
        return a.decided_at is not None
    return a.decided_at > b.decided_at


def latest_analysis(session: Session, incident_id: str) -> Analysis | None:
    """The incident's most recent analysis with its findings loaded, or None."""
    query = (
        select(Analysis)
        .where(Analysis.incident_id == incident_id)
        .order_by(Analysis.id.desc())
        .limit(1)
        .options(selectinload(Analysis.findings))
    )
    return session.scalars(query).first()


def decisions_for(session: Session, incident_id: str) -> dict[str, str]:
    """Fingerprint -> decision ("accepted" | "false-positive") in force for the incident:
    the decisions the next analysis would carry over."""
    decided = _latest_decided(session, incident_id)
    return {fp: f.decision for fp, f in decided.items() if f.decision is not None}


def dismissed_fingerprints(session: Session, incident_id: str) -> set[str]:
    """Fingerprints reviewers marked false positives: the flags a report leaves out."""
    return {
        fp
        for fp, decision in decisions_for(session, incident_id).items()
        if decision == "false-positive"
    }


def decide_finding(
    session: Session,
    finding_id: int,
    decision: str | None,
    actor: str,
    reason: str | None = None,
    at: datetime | None = None,
) -> Finding:
    """Record a reviewer's decision on a finding (None clears it), with an audit entry.

    A false positive needs a reason: it is what an admin reads when tuning the rule.
    """
    if decision is not None and decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)} or None")
    if decision == "false-positive" and not (reason or "").strip():
        raise ValueError("marking a finding a false positive needs a reason")
    finding = session.get(Finding, finding_id)
    if finding is None:
        raise LookupError(f"no finding {finding_id}")
    finding.decision = decision
    finding.decided_by = actor if decision else None
    finding.decided_at = (at or utcnow()) if decision else None
    finding.reason = reason if decision else None
    audit(
        session,
        actor,
        f"finding.{decision or 'undecided'}",
        "finding",
        str(finding_id),
        reason=reason,
        detail={"rule": finding.rule, "fingerprint": finding.fingerprint},
    )
    session.flush()
    return finding


# --- audit ------------------------------------------------------------------------------


def audit(
    session: Session,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    reason: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry to the audit log (in the caller's transaction, so an action and
    its audit entry are stored together or not at all)."""
    entry = AuditEntry(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        reason=reason,
        detail=dict(detail) if detail is not None else None,
    )
    session.add(entry)
    session.flush()
    return entry


# --- the review dashboard: queue, current analyses, waivers, audit log -------------------

QUEUE_STATUSES = ("missing", "needs-review", "unchecked", "ok", "waived", "check-failed")
# A filter value meaning "not set": incidents without a team or a severity are a group a
# reviewer needs to find too (often the ones nobody triages).
NOT_SET = "-"


@dataclasses.dataclass(frozen=True)
class QueueFilters:
    """What the incident queue is narrowed to; empty fields do not filter."""

    statuses: tuple[str, ...] = ()  # any of QUEUE_STATUSES
    tracker: str = ""
    project: str = ""
    team: str = ""  # NOT_SET: no team
    severity: str = ""  # NOT_SET: no severity
    closed_within_days: int | None = None


@dataclasses.dataclass(frozen=True)
class FindingCounts:
    """Flags of an incident's current analyses, by reviewer decision (suppressed ones,
    which the author already answered in the postmortem, are not counted)."""

    open: int = 0  # no decision yet
    accepted: int = 0
    false_positive: int = 0


@dataclasses.dataclass(frozen=True)
class QueueRow:
    incident: Incident
    check_failed: bool  # the incident's latest job failed
    counts: FindingCounts


@dataclasses.dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _latest_failed_jobs():
    """Incident ids whose most recent job ended `failed` (retries spent or a permanent
    error): the "check failed" status. A later successful job clears it."""
    latest = (
        select(Job.incident_id.label("incident_id"), func.max(Job.id).label("job_id"))
        .where(Job.incident_id.is_not(None))
        .group_by(Job.incident_id)
        .subquery()
    )
    return (
        select(latest.c.incident_id.label("incident_id"))
        .join(Job, Job.id == latest.c.job_id)
        .where(Job.status == "failed")
        .subquery()
    )


def _waiver_expired(now: datetime):
    return and_(Incident.waived_until.is_not(None), Incident.waived_until <= now)


def incident_queue(
    session: Session,
    filters: QueueFilters,
    *,
    now: datetime,
    page: int = 1,
    per_page: int = 25,
) -> QueuePage:
    """One page of incidents, what needs attention first.

    Order: needs-review, unchecked (a person must read it) and missing; then a failed check
    or an expired waiver (the tracker shows a stale answer); then waived and ok; then
    incidents the policy exempts (no verdict). Within a group the oldest closure comes
    first: it has waited longest.
    """
    failed = _latest_failed_jobs()
    is_failed = failed.c.incident_id.is_not(None)
    conditions = []
    statuses = [s for s in filters.statuses if s in QUEUE_STATUSES]
    if statuses:
        wanted = []
        for status in statuses:
            if status == "check-failed":
                wanted.append(or_(is_failed, Incident.verdict == "check-failed"))
            else:
                wanted.append(Incident.verdict == status)
        conditions.append(or_(*wanted))
    if filters.tracker:
        conditions.append(Incident.tracker == filters.tracker)
    if filters.project:
        conditions.append(Incident.project == filters.project)
    for column, value in ((Incident.team, filters.team), (Incident.severity, filters.severity)):
        if value == NOT_SET:
            conditions.append(column.is_(None))
        elif value:
            conditions.append(column == value)
    if filters.closed_within_days:
        conditions.append(Incident.closed_at >= now - timedelta(days=filters.closed_within_days))

    rank = case(
        (Incident.verdict.in_(("needs-review", "unchecked", "missing")), 0),
        (is_failed, 1),
        (Incident.verdict == "check-failed", 1),
        (and_(Incident.verdict == "waived", _waiver_expired(now)), 1),
        (Incident.verdict.in_(("waived", "ok")), 2),
        else_=3,
    )
    base = select(Incident, is_failed.label("check_failed")).outerjoin(
        failed, failed.c.incident_id == Incident.id
    )
    if conditions:
        base = base.where(*conditions)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    page = max(1, page)
    rows = session.execute(
        base.order_by(
            rank, Incident.closed_at.is_(None), Incident.closed_at.asc(), Incident.id
        )
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    incidents = [row[0] for row in rows]
    counts = finding_counts(session, incidents)
    return QueuePage(
        rows=[
            QueueRow(incident, bool(failed_flag), counts.get(incident.id, FindingCounts()))
            for incident, failed_flag in rows
        ],
        total=total,
        page=page,
        per_page=per_page,
    )


def queue_facets(session: Session) -> dict[str, list[str]]:
    """The values the queue's filters can take, from the incidents stored."""

    def distinct(column) -> list[str]:
        query = select(column).where(column.is_not(None)).distinct().order_by(column)
        return list(session.scalars(query))

    return {
        "tracker": distinct(Incident.tracker),
        "project": distinct(Incident.project),
        "team": distinct(Incident.team),
        "severity": distinct(Incident.severity),
    }


def queue_status_counts(session: Session) -> dict[str, int]:
    """How many incidents each queue status filter would show."""
    counts = dict.fromkeys(QUEUE_STATUSES, 0)
    query = select(Incident.verdict, func.count()).group_by(Incident.verdict)
    for verdict, count in session.execute(query):
        if verdict in counts and verdict != "check-failed":
            counts[verdict] = count
    failed = _latest_failed_jobs()
    counts["check-failed"] = session.scalar(
        select(func.count())
        .select_from(Incident)
        .outerjoin(failed, failed.c.incident_id == Incident.id)
        .where(or_(failed.c.incident_id.is_not(None), Incident.verdict == "check-failed"))
    ) or 0
    return counts


def failed_unread_checks(session: Session, limit: int = 20) -> list[Job]:
    """Failed latest jobs for incidents the store never read (the first check failed
    before the incident could be fetched): nothing else would show them in the queue."""
    failed = _latest_failed_jobs()
    query = (
        select(Job)
        .join(failed, failed.c.incident_id == Job.incident_id)
        .outerjoin(Incident, Incident.id == Job.incident_id)
        .where(Incident.id.is_(None), Job.kind.in_(("check", "recheck")))
        .order_by(Job.id.desc())
        .limit(limit)
    )
    latest = {}
    for job in session.scalars(query):
        latest.setdefault(job.incident_id, job)
    return list(latest.values())


def _pick_current(incident: Incident, analyses: Iterable[Any]) -> list[Any]:
    """Of an incident's analyses (anything with id, postmortem_id and created_at), the
    ones its latest check produced, oldest first.

    A check stores one analysis per postmortem it read, all created after it stamped
    `last_checked_at`. A "missing" verdict read nothing, so nothing is current. A waived
    check reads nothing either (the waiver is decided before analysing), so the newest
    analysis of each postmortem stays current: the text the waiver was given for.
    """
    if incident.verdict == "missing":
        return []
    newest: dict[str | None, Any] = {}
    for analysis in sorted(analyses, key=lambda a: a.id, reverse=True):
        newest.setdefault(analysis.postmortem_id, analysis)
    chosen = list(newest.values())
    checked = incident.last_checked_at
    if incident.verdict != "waived" and checked is not None:
        fresh = [a for a in chosen if a.created_at >= checked]
        # None fresh: rows written by hand (tests, imports); show what there is.
        chosen = fresh or chosen
    return sorted(chosen, key=lambda a: a.id)


def current_analyses(session: Session, incident: Incident) -> list[Analysis]:
    """The analyses of the incident's latest check, findings loaded (see _pick_current)."""
    heads = session.execute(
        select(Analysis.id, Analysis.postmortem_id, Analysis.created_at).where(
            Analysis.incident_id == incident.id
        )
    ).all()
    ids = [a.id for a in _pick_current(incident, heads)]
    if not ids:
        return []
    query = (
        select(Analysis)
        .where(Analysis.id.in_(ids))
        .order_by(Analysis.id)
        .options(selectinload(Analysis.findings), selectinload(Analysis.postmortem))
    )
    return list(session.scalars(query))


def finding_counts(session: Session, incidents: Iterable[Incident]) -> dict[str, FindingCounts]:
    """Per incident id, its current analyses' flags by decision."""
    by_id = {incident.id: incident for incident in incidents}
    if not by_id:
        return {}
    heads = session.execute(
        select(Analysis.id, Analysis.incident_id, Analysis.postmortem_id, Analysis.created_at)
        .where(Analysis.incident_id.in_(list(by_id)))
    ).all()
    grouped: dict[str, list[Any]] = {}
    for head in heads:
        grouped.setdefault(head.incident_id, []).append(head)
    owner: dict[int, str] = {}
    for incident_id, analyses in grouped.items():
        for analysis in _pick_current(by_id[incident_id], analyses):
            owner[analysis.id] = incident_id
    tallies: dict[str, dict[str | None, int]] = {}
    if owner:
        query = (
            select(Finding.analysis_id, Finding.decision, func.count())
            .where(Finding.analysis_id.in_(list(owner)), Finding.suppressed.is_(False))
            .group_by(Finding.analysis_id, Finding.decision)
        )
        for analysis_id, decision, count in session.execute(query):
            tally = tallies.setdefault(owner[analysis_id], {})
            tally[decision] = tally.get(decision, 0) + count
    return {
        incident_id: FindingCounts(
            open=tally.get(None, 0),
            accepted=tally.get("accepted", 0),
            false_positive=tally.get("false-positive", 0),
        )
        for incident_id, tally in tallies.items()
    }


def incident_jobs(session: Session, incident_id: str, limit: int = 5) -> list[Job]:
    """The incident's newest jobs, newest first: whether a re-check is queued or failed."""
    query = (
        select(Job).where(Job.incident_id == incident_id).order_by(Job.id.desc()).limit(limit)
    )
    return list(session.scalars(query))


def incidents_with_prefix(session: Session, prefix: str, limit: int = 20) -> list[Incident]:
    """Incidents whose id starts with `prefix`: a GitHub id's "#12" is a URL fragment, so
    a link that did not quote it arrives as the id without its number."""
    query = (
        select(Incident)
        .where(Incident.id.startswith(prefix, autoescape=True))
        .order_by(Incident.closed_at.desc(), Incident.id)
        .limit(limit)
    )
    return list(session.scalars(query))


@dataclasses.dataclass(frozen=True)
class Waiver:
    """An incident manager's decision that an incident needs no postmortem check."""

    by: str | None
    reason: str
    until: datetime | None  # exclusive; None: no expiry

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    @property
    def last_day(self) -> date | None:
        """The last day (UTC) the waiver covers, as the reviewer entered it."""
        return (self.until - timedelta(microseconds=1)).date() if self.until else None


def waiver_of(incident: Incident) -> Waiver | None:
    """The incident's waiver, expired or not; None when it has none."""
    if not incident.waived_reason:
        return None
    return Waiver(incident.waived_by, incident.waived_reason, incident.waived_until)


def active_waiver(session: Session, incident_id: str, now: datetime) -> Waiver | None:
    """The incident's waiver when it has one that has not expired (an expired waiver is
    ignored: the incident is checked as usual)."""
    incident = session.get(Incident, incident_id)
    waiver = waiver_of(incident) if incident is not None else None
    return waiver if waiver is not None and waiver.active(now) else None


def set_waiver(
    session: Session,
    incident_id: str,
    actor: str,
    reason: str,
    until: datetime | None = None,
) -> Incident:
    """Waive the incident's check (replacing any waiver), with an audit entry.

    `until` is exclusive; None waives with no expiry. A reason is required: it is what
    the ticket's comment and the audit log show instead of the reviewer's name.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("waiving a check needs a reason")
    if until is not None and until.tzinfo is None:
        raise ValueError("a waiver's expiry must be an aware UTC datetime")
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise LookupError(f"no incident {incident_id}")
    incident.waived_by = actor
    incident.waived_reason = reason
    incident.waived_until = until
    audit(
        session, actor, "incident.waive", "incident", incident_id, reason=reason,
        detail={"until": until.isoformat() if until else None},
    )
    session.flush()
    return incident


def lift_waiver(session: Session, incident_id: str, actor: str) -> Incident:
    """Remove the incident's waiver, with an audit entry that keeps what was lifted."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise LookupError(f"no incident {incident_id}")
    lifted = waiver_of(incident)
    incident.waived_by = incident.waived_reason = incident.waived_until = None
    audit(
        session, actor, "incident.waiver-lifted", "incident", incident_id,
        detail={
            "waived_by": lifted.by if lifted else None,
            "waived_reason": lifted.reason if lifted else None,
            "until": lifted.until.isoformat() if lifted and lifted.until else None,
        },
    )
    session.flush()
    return incident


def audit_entries(
    session: Session, *, action: str = "", actor: str = "", page: int = 1, per_page: int = 50
) -> tuple[list[AuditEntry], int]:
    """One page of the audit log, newest first, and how many entries match in all."""
    query = select(AuditEntry)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    entries = session.scalars(
        query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(per_page)
        .offset((max(1, page) - 1) * per_page)
    )
    return list(entries), total


def audit_facets(session: Session) -> dict[str, list[str]]:
    """The actions and actors the audit log holds, for its filters."""
    actions = session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action))
    actors = session.scalars(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor))
    return {"action": list(actions), "actor": list(actors)}


def finding_incidents(session: Session, finding_ids: Iterable[int]) -> dict[int, str]:
    """Finding id -> the id of the incident it was found for."""
    ids = set(finding_ids)
    if not ids:
        return {}
    query = (
        select(Finding.id, Analysis.incident_id)
        .join(Analysis, Analysis.id == Finding.analysis_id)
        .where(Finding.id.in_(ids))
    )
    return {finding_id: incident_id for finding_id, incident_id in session.execute(query)}
