"""The reads and writes the web layer and the worker need, each taking a Session.

None of these commit: the caller's `session_scope` decides the transaction, so a webhook
can record its delivery and enqueue its job atomically. Job lifecycle functions live in
store.jobs and are re-exported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
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
    "decisions_for",
    "dismissed_fingerprints",
    "fail_job",
    "failed_jobs",
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


def accept_delivery(
    engine: Engine,
    *,
    source: str,
    delivery_id: str,
    event: str,
    incident_id: str | None,
    kind: str,
    payload: Mapping[str, Any],
    max_attempts: int,
) -> int | None:
    """Record a delivery and its job in one transaction; the job id, or None for a
    redelivery. The webhook's hot path: two Core INSERTs with ON CONFLICT DO NOTHING on the
    idempotency key, none of the ORM's unit-of-work bookkeeping."""
    if not delivery_id:
        raise ValueError("a delivery needs its delivery id (the idempotency key)")
    insert = _dialect_insert(engine)
    with engine.begin() as conn:
        inserted = conn.execute(
            insert(Delivery.__table__)
            .values(source=source, delivery_id=delivery_id, event=event,
                    outcome="enqueued", incident_id=incident_id)
            .on_conflict_do_nothing(index_elements=["source", "delivery_id"])
            .returning(Delivery.__table__.c.id)
        ).first()
        if inserted is None:
            return None
        return conn.execute(
            insert(Job.__table__)
            .values(kind=kind, incident_id=incident_id, payload=dict(payload),
                    status="queued", attempts=0, max_attempts=max_attempts)
            .returning(Job.__table__.c.id)
        ).scalar_one()


def _dialect_insert(engine: Engine):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


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
