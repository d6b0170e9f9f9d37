"""Published rule packs: publish, history, rollback, and the reads rule tuning needs
(the stored postmortems a replay reads, per-rule figures from reviewers' decisions).

Like store.queries, nothing here commits: the caller's `session_scope` holds a publish and
its audit entry in one transaction.

Version strings. The store assigns every published version its own string,
`YYYY.MM.DD-N` (UTC date of publishing, N counting that day's publications of the pack
from 1), and ignores the YAML's own `version:` field for this. The YAML field is written by
hand, is copied verbatim by a rollback (so it would repeat), and nothing makes an author
bump it; a store-assigned string is unique by construction, sorts by time, and is what
every analysis records (`Analysis.pack_version`). The YAML's field is kept in the text and
in the audit entry's detail as `pack_version`.

History is append-only: a rollback publishes the old text again as a new version rather
than re-activating the old row, so "what was in force when" is always read off the rows.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, text, update
from sqlalchemy.orm import Session

from rules.replay_input import DEFAULT_REPLAY, MAX_REPLAY, StoredText
from rules.schema import parse_pack
from rules.stats import MIN_DECISIONS, FlagRecord, RuleStats, compute_stats
from rules.versions import (
    ADDED,
    CHANGED,
    PUBLISH_MODES,
    REMOVED,
    DraftCheck,
    PublishRefused,
    diff_versions,
)
from store.models import Analysis, Finding, Incident, Postmortem, RulePackVersion
from store.queries import audit
from store.types import utcnow

__all__ = [
    "DEFAULT_NAME",
    "PUBLISH_MODES",
    "PublishRefused",
    "active_pack_version",
    "active_version_id",
    "get_version",
    "pack_history",
    "publish",
    "recent_postmortem_texts",
    "rollback",
    "rule_stats",
]

DEFAULT_NAME = "default"


# --- reads ------------------------------------------------------------------------------


def active_pack_version(session: Session, name: str = DEFAULT_NAME) -> RulePackVersion | None:
    """The version of pack `name` in force, or None (then the shipped default applies)."""
    query = (
        select(RulePackVersion)
        .where(RulePackVersion.name == name, RulePackVersion.active.is_(True))
        # Defensive: publish keeps at most one active row, but should two ever be, the
        # newest wins rather than an arbitrary one.
        .order_by(RulePackVersion.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def active_version_id(session: Session, name: str = DEFAULT_NAME) -> int | None:
    """Just the id of the active version: the worker's cheap "has it changed?" probe."""
    query = (
        select(RulePackVersion.id)
        .where(RulePackVersion.name == name, RulePackVersion.active.is_(True))
        .order_by(RulePackVersion.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def pack_history(session: Session, name: str = DEFAULT_NAME) -> list[RulePackVersion]:
    """Every published version of pack `name`, newest first."""
    query = (
        select(RulePackVersion)
        .where(RulePackVersion.name == name)
        # By id, not created_at: two publishes in one clock tick must still have an order.
        .order_by(RulePackVersion.id.desc())
    )
    return list(session.scalars(query))


def get_version(session: Session, version_id: int) -> RulePackVersion | None:
    return session.get(RulePackVersion, version_id)


def find_version(session: Session, name: str, version: str) -> RulePackVersion | None:
    """A published version by its version string (what analyses record)."""
    return session.scalars(
        select(RulePackVersion).where(
            RulePackVersion.name == name, RulePackVersion.version == version
        )
    ).first()


# --- writes -----------------------------------------------------------------------------


def publish(
    session: Session,
    name: str,
    text: str,
    actor: str,
    reason: str | None = None,
    *,
    checked: DraftCheck,
    source: str = "draft",
    now: datetime | None = None,
) -> RulePackVersion:
    """Make `text`, which passed the publish gate as `checked`
    (check.examples.validate_draft; worker.tuning.publish runs both), the active version of
    pack `name`.

    Raises `PublishRefused` when the text is the active version's text unchanged (a double
    submit). Deactivates the previous active version and writes a "publish-rules" audit
    entry. The store runs no analysis: the examples ran before, outside the transaction
    (on SQLite every transaction holds the write lock, store.db).
    """
    _require(actor, "publishing a rule pack needs the actor")
    _lock_pack(session, name)
    previous = active_pack_version(session, name)
    if previous is not None and previous.text == text:
        raise PublishRefused(
            f"{source}: identical to the active version {previous.version}; nothing to publish"
        )
    row = _activate(session, name, text, actor, now)
    detail: dict[str, Any] = {
        "name": name,
        "version": row.version,
        "pack_version": checked.pack.version,
        "previous": previous.version if previous else None,
        "previous_id": previous.id if previous else None,
        "rules": len(checked.pack.rules),
        "examples": checked.examples,
    }
    if previous is not None:
        detail["changes"] = _change_summary(previous.text, text)
    audit(session, actor, "publish-rules", "rule_pack", str(row.id), reason=reason, detail=detail)
    return row


def rollback(
    session: Session, name: str, version_id: int, actor: str, reason: str
) -> RulePackVersion:
    """Put the text of an older version back in force, as a new active version.

    The reason is required: a rollback usually answers something going wrong, and the
    audit log is where the next admin looks for what. The old text must still parse
    (PackError otherwise: the worker could not load it), but its examples are not re-run;
    they passed when it was published, and a rollback is the way out of a bad publish,
    which should not be blocked by an unrelated engine change.
    """
    _require(actor, "rolling back a rule pack needs the actor")
    _require(reason, "rolling back a rule pack needs a reason")
    target = get_version(session, version_id)
    if target is None or target.name != name:
        raise LookupError(f"no version {version_id} of rule pack {name!r}")
    _lock_pack(session, name)
    previous = active_pack_version(session, name)
    if previous is not None and previous.id == target.id:
        raise ValueError(f"version {target.version} of rule pack {name!r} is already active")
    if previous is not None and previous.text == target.text:
        raise ValueError(
            f"the active version {previous.version} already has the text of {target.version}"
        )
    parse_pack(target.text, f"rule pack {name} {target.version}")
    row = _activate(session, name, target.text, actor, None)
    audit(
        session,
        actor,
        "rollback-rules",
        "rule_pack",
        str(row.id),
        reason=reason,
        detail={
            "name": name,
            "version": row.version,
            "from_id": target.id,
            "from_version": target.version,
            "previous": previous.version if previous else None,
            "previous_id": previous.id if previous else None,
        },
    )
    return row


def _require(value: str | None, message: str) -> None:
    if not (value or "").strip():
        raise ValueError(message)


def _lock_pack(session: Session, name: str) -> None:
    """Serialise publishers of one pack until the transaction ends, so two concurrent
    publishes cannot both stay active or pick the same version string.

    PostgreSQL: a transaction-scoped advisory lock keyed by the pack name (a plain row lock
    would not cover the first publish, when no row exists yet). SQLite: nothing to do;
    store.db begins every transaction with BEGIN IMMEDIATE, which already admits one writer.
    """
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"pmguard-rule-pack:{name}".encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _activate(
    session: Session, name: str, pack_text: str, actor: str, now: datetime | None
) -> RulePackVersion:
    now = now or utcnow()
    session.execute(
        update(RulePackVersion)
        .where(RulePackVersion.name == name, RulePackVersion.active.is_(True))
        .values(active=False)
        .execution_options(synchronize_session="fetch")
    )
    row = RulePackVersion(
        name=name,
        version=_next_version(session, name, now),
        text=pack_text,
        created_at=now,
        created_by=actor,
        active=True,
    )
    session.add(row)
    session.flush()
    return row


def _next_version(session: Session, name: str, now: datetime) -> str:
    day = now.strftime("%Y.%m.%d")
    taken = session.scalars(
        select(RulePackVersion.version).where(
            RulePackVersion.name == name, RulePackVersion.version.like(f"{day}-%")
        )
    )
    numbers = [int(v.rsplit("-", 1)[1]) for v in taken if v.rsplit("-", 1)[1].isdigit()]
    return f"{day}-{max(numbers, default=0) + 1}"


def _change_summary(old_text: str, new_text: str) -> dict[str, list[str]]:
    """Rule ids added / removed / changed, for the audit entry. A previous text that no
    longer parses (the shipped default it extends changed) is recorded, not fatal."""
    try:
        changes = diff_versions(old_text, new_text)
    except ValueError as error:  # PackError
        return {"error": [str(error)]}
    return {kind: [c.rule for c in changes if c.kind == kind] for kind in (ADDED, REMOVED, CHANGED)}


# --- replay -----------------------------------------------------------------------------


def recent_postmortem_texts(session: Session, limit: int = DEFAULT_REPLAY) -> list[StoredText]:
    """The last `limit` (at most MAX_REPLAY) distinct postmortems the service read: per
    postmortem its latest stored analysis, newest first, with the reviewers' decisions in
    force on that analysis's findings.

    The incident's roster (author, assignees, commenters) is not stored, so StoredText
    carries none: replay recognises people by pronouns, roles, @mentions and name tables
    only, on both sides alike.
    """
    limit = max(1, min(int(limit), MAX_REPLAY))
    latest = (
        select(func.max(Analysis.id).label("id"))
        .where(Analysis.postmortem_id.is_not(None), Analysis.text != "")
        .group_by(Analysis.postmortem_id)
        .subquery()
    )
    query = (
        select(Analysis, Postmortem.title, Incident.title)
        .join(latest, Analysis.id == latest.c.id)
        .outerjoin(Postmortem, Postmortem.id == Analysis.postmortem_id)
        .outerjoin(Incident, Incident.id == Analysis.incident_id)
        .order_by(Analysis.id.desc())
        .limit(limit)
    )
    rows = session.execute(query).all()
    decisions: dict[int, dict[str, str]] = {}
    if rows:
        # save_analysis copies decisions forward, so the latest analysis's findings carry
        # the decisions in force for its incident.
        decided = session.execute(
            select(Finding.analysis_id, Finding.fingerprint, Finding.decision).where(
                Finding.analysis_id.in_([r[0].id for r in rows]),
                Finding.decision.is_not(None),
            )
        )
        for analysis_id, fp, decision in decided:
            decisions.setdefault(analysis_id, {})[fp] = decision
    return [
        StoredText(
            postmortem_id=analysis.postmortem_id or "",
            incident_id=analysis.incident_id,
            title=pm_title or incident_title or "",
            text=analysis.text,
            format=analysis.format or "markdown",
            roster=(),
            decisions=decisions.get(analysis.id, {}),
        )
        for analysis, pm_title, incident_title in rows
    ]


# --- per-rule figures -------------------------------------------------------------------


def rule_stats(
    session: Session,
    since: datetime | None = None,
    *,
    rules: Iterable[str] = (),
    min_decisions: int = MIN_DECISIONS,
) -> list[RuleStats]:
    """Per-rule hits, decisions, precision and most-dismissed phrases, worst rule first.

    Each flag counts once per incident: every re-check stores the findings again (with the
    decisions carried over), so counting rows would weigh a postmortem by how often it was
    re-checked. Per (incident, fingerprint) the finding from the newest analysis holding it
    is the one counted; a flag later edited away keeps the decision it had, which matters
    because an accepted flag is usually followed by exactly that edit. `since` keeps
    analyses stored at or after it. `rules` adds zero rows for rules that never fired.
    """
    order = (
        Analysis.id.desc(),
        # Within one analysis a rule can flag the same sentence twice: a decided row wins.
        case((Finding.decision.is_(None), 1), else_=0),
        Finding.id.desc(),
    )
    ranked = select(
        Finding.rule,
        Finding.text,
        Finding.decision,
        Finding.suppressed,
        func.row_number()
        .over(partition_by=(Analysis.incident_id, Finding.fingerprint), order_by=order)
        .label("rank"),
    ).join(Finding.analysis)
    if since is not None:
        ranked = ranked.where(Analysis.created_at >= since)
    sub = ranked.subquery()
    query = select(sub.c.rule, sub.c.text, sub.c.decision, sub.c.suppressed).where(sub.c.rank == 1)
    records = (
        FlagRecord(rule, flagged or "", decision, bool(suppressed))
        for rule, flagged, decision, suppressed in session.execute(query)
    )
    return compute_stats(records, rules=rules, min_decisions=min_decisions)
