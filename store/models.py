"""What the service remembers: deliveries, incidents, postmortems, analyses, findings,
jobs, the audit log, published rule packs, and the people who sign in (users, API tokens).

Portable between SQLite and PostgreSQL: no server defaults or dialect types, JSON through
`sqlalchemy.JSON`, datetimes through `UTCDateTime`. Timestamps are set in Python so both
databases agree on them to the microsecond.

Enumerated values are plain strings with a CHECK constraint rather than SQL ENUM types:
adding a value later is a one-line migration on both databases instead of an ALTER TYPE
on PostgreSQL and a table rebuild on SQLite.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from store.types import UTCDateTime, utcnow

TRACKERS = ("github", "jira")
DELIVERY_OUTCOMES = ("enqueued", "ignored", "rejected")
VERDICTS = ("missing", "needs-review", "unchecked", "ok", "waived", "check-failed")
DECISIONS = ("accepted", "false-positive")
JOB_STATUSES = ("queued", "running", "done", "failed")
# Lowest to highest: each role may do everything the ones before it may.
ROLES = ("engineer", "incident_manager", "admin")

# Explicit constraint names: Alembic's batch mode on SQLite can only drop or alter a
# constraint it can name, and PostgreSQL's generated names differ from SQLite's.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Long enough for an incident id with a GitHub Enterprise or Jira site URL in it.
ID_LENGTH = 512


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name)


def _check_value(field: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    # Fail at assignment with a readable message instead of an IntegrityError at flush.
    if value is not None and value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")
    return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Delivery(Base):
    """One webhook delivery; (source, delivery_id) is the idempotency key for redeliveries."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("source", "delivery_id"),
        _one_of("source", TRACKERS, "source"),
        _one_of("outcome", DELIVERY_OUTCOMES, "outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    delivery_id: Mapped[str] = mapped_column(String(255))
    event: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))
    # No foreign key: a delivery is recorded before the worker first stores the incident.
    # No index either: nothing reads deliveries by incident, and every index is one more
    # page for the webhook's commit to write (migration 0004).
    incident_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))

    @validates("source")
    def _source(self, _key: str, value: str) -> str | None:
        return _check_value("source", value, TRACKERS)

    @validates("outcome")
    def _outcome(self, _key: str, value: str) -> str | None:
        return _check_value("outcome", value, DELIVERY_OUTCOMES)


incident_postmortems = Table(
    "incident_postmortems",
    Base.metadata,
    Column(
        "incident_id",
        String(ID_LENGTH),
        ForeignKey("incidents.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "postmortem_id",
        String(ID_LENGTH),
        ForeignKey("postmortems.id", ondelete="CASCADE"),
        primary_key=True,
        # The primary key serves incident -> postmortems; this serves the reverse
        # (a postmortem was edited: which incidents need a re-check?).
        index=True,
    ),
    Column("linked_at", UTCDateTime, nullable=False, default=utcnow),
)


class Incident(Base):
    """A tracker issue that is an incident, as of the last check."""

    __tablename__ = "incidents"
    __table_args__ = (
        _one_of("verdict", VERDICTS, "verdict"),
        # The dashboard queue: filter by verdict, newest closures first.
        Index(None, "verdict", "closed_at"),
        Index(None, "tracker", "project"),
        Index(None, "team"),
        Index(None, "closed_at"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)  # IncidentRef.id
    tracker: Mapped[str] = mapped_column(String(16))
    site: Mapped[str] = mapped_column(String(ID_LENGTH))
    project: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(32), default="")
    closed_at: Mapped[datetime | None]
    severity: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(255))
    verdict: Mapped[str | None] = mapped_column(String(16))
    comment_id: Mapped[str | None] = mapped_column(String(255))
    last_checked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    waived_by: Mapped[str | None] = mapped_column(String(255))
    waived_reason: Mapped[str | None] = mapped_column(Text)
    waived_until: Mapped[datetime | None]

    postmortems: Mapped[list[Postmortem]] = relationship(
        secondary=incident_postmortems, back_populates="incidents"
    )
    analyses: Mapped[list[Analysis]] = relationship(
        back_populates="incident",
        order_by="Analysis.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @validates("tracker")
    def _tracker(self, _key: str, value: str) -> str | None:
        return _check_value("tracker", value, TRACKERS)

    @validates("verdict")
    def _verdict(self, _key: str, value: str | None) -> str | None:
        return _check_value("verdict", value, VERDICTS)


class Postmortem(Base):
    """Where a postmortem lives; one row may serve several incidents."""

    __tablename__ = "postmortems"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)  # postmortem_key()
    tracker: Mapped[str] = mapped_column(String(16))
    site: Mapped[str] = mapped_column(String(ID_LENGTH))
    kind: Mapped[str] = mapped_column(String(32))  # issue | file | confluence | url
    locator: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text, default="")
    title: Mapped[str] = mapped_column(Text, default="")
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    incidents: Mapped[list[Incident]] = relationship(
        secondary=incident_postmortems, back_populates="postmortems"
    )


class Analysis(Base):
    """One check of one incident: the exact text read, the pack used, what it concluded."""

    __tablename__ = "analyses"
    __table_args__ = (
        _one_of("verdict", VERDICTS, "verdict"),
        # latest_analysis() and the decision carry-over read an incident's analyses newest
        # first.
        Index(None, "incident_id", "id"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("incidents.id", ondelete="CASCADE")
    )
    postmortem_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("postmortems.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    text: Mapped[str] = mapped_column(Text, default="")
    format: Mapped[str] = mapped_column(String(16), default="markdown")
    pack_name: Mapped[str] = mapped_column(String(128), default="")
    pack_version: Mapped[str] = mapped_column(String(64), default="")
    model: Mapped[str] = mapped_column(String(128), default="")
    verdict: Mapped[str] = mapped_column(String(16))
    action_items: Mapped[list[Any]] = mapped_column(default=list)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)

    incident: Mapped[Incident] = relationship(back_populates="analyses")
    postmortem: Mapped[Postmortem | None] = relationship()
    findings: Mapped[list[Finding]] = relationship(
        back_populates="analysis",
        order_by="Finding.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @validates("verdict")
    def _verdict(self, _key: str, value: str) -> str | None:
        return _check_value("verdict", value, VERDICTS)


class Finding(Base):
    """One flag in one analysis, with the reviewer's decision on it."""

    __tablename__ = "findings"
    __table_args__ = (
        _one_of("decision", DECISIONS, "decision"),
        # Per-rule figures (hits, accepted, false positives) for the rules page.
        Index(None, "rule", "decision"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    analysis_id: Mapped[int] = mapped_column(
        ForeignKey("analyses.id", ondelete="CASCADE"), index=True
    )
    rule: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(64), default="")
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    message: Mapped[str] = mapped_column(Text, default="")
    suggestion: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    sentence: Mapped[str] = mapped_column(Text, default="")
    start: Mapped[int | None]
    end: Mapped[int | None]
    line: Mapped[int | None]
    column: Mapped[int | None]
    end_line: Mapped[int | None]
    end_column: Mapped[int | None]
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False)
    justification: Mapped[str] = mapped_column(Text, default="")  # of an inline suppression
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    decision: Mapped[str | None] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decided_at: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(Text)

    analysis: Mapped[Analysis] = relationship(back_populates="findings")

    @validates("decision")
    def _decision(self, _key: str, value: str | None) -> str | None:
        return _check_value("decision", value, DECISIONS)


class AuditEntry(Base):
    """Who did what, to what, when and why. Rows are only ever added."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index(None, "at"),
        Index(None, "target_type", "target_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Job(Base):
    """The durable record of a queued task, so a failure is visible and retryable.

    The queue (huey) only carries the job id; status and attempts live here, so they
    survive a worker being killed and are readable by `pmguard jobs` and the dashboard.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        _one_of("status", JOB_STATUSES, "status"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))  # check_incident | reconcile | ...
    # No foreign key: a check is enqueued before its incident is first stored.
    incident_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]
    # "host:pid" of the worker running it: a restarted worker can tell a job whose worker
    # died (same host, no such process) from one another worker is still running.
    owner: Mapped[str | None] = mapped_column(String(128))

    @validates("status")
    def _status(self, _key: str, value: str) -> str | None:
        return _check_value("status", value, JOB_STATUSES)


class IncidentLock(Base):
    """A lease on one incident: at most one worker checks it at a time. A lease, not a
    plain lock, so a killed worker cannot hold an incident forever."""

    __tablename__ = "incident_locks"

    incident_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(160))
    expires_at: Mapped[datetime]


class RulePackVersion(Base):
    """A published rule pack: the YAML exactly as published, for history and rollback."""

    __tablename__ = "rule_pack_versions"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        Index(None, "name", "active"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=False)


class User(Base):
    """Someone who signs in to the dashboard or calls the JSON API.

    Usernames are stored lower-case (store.users normalises them), so the unique
    constraint is case-insensitive on both databases without a functional index. Only a
    password hash is kept (argon2id, see store.users).
    """

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("username"),
        _one_of("role", ROLES, "role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Consecutive failed sign-ins since the last success: shown to admins by
    # `pmguard users list`. The rate limit itself lives in web.auth, not here.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_login_at: Mapped[datetime | None]

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user",
        order_by="ApiToken.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @validates("role")
    def _role(self, _key: str, value: str) -> str | None:
        return _check_value("role", value, ROLES)


class ApiToken(Base):
    """A bearer token for the JSON API, acting as its user with the user's role.

    Only the SHA-256 of the token is stored: tokens are 256 random bits, so a fast hash
    is enough (no dictionary to attack) and it can be looked up by equality.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64))
    # The token's first characters, so its owner can tell tokens apart in a list.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
