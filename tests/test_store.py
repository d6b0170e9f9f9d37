"""The store on both databases it supports: SQLite (a temporary file) and PostgreSQL (a
database of its own for this test session, dropped at the end)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from connector.base import IncidentRef
from store import queries as q
from store.db import (
    DatabaseUnavailable,
    is_unavailable,
    make_engine,
    normalise_url,
    ping,
    session_factory,
    session_scope,
)
from store.fingerprint import fingerprint
from store.models import AuditEntry, Base, Delivery, Finding, Incident, Job
from store.testing import temporary_database, unreachable_reason

# A port nothing listens on: connection refused at once, so "database down" is fast.
DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:9/pmguard"


def unavailable(reason: str) -> None:
    """Skip on a laptop without the server; fail in CI so CI cannot pass by skipping."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    reason = unreachable_reason()
    if reason:
        unavailable(reason)
    with temporary_database() as url:
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        # A directory that does not exist yet: make_engine must create it.
        engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'pmguard.db'}")
        Base.metadata.create_all(engine)
        yield engine
        engine.dispose()
        return
    engine = request.getfixturevalue("postgres_engine")
    yield engine
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 1, hour, minute, tzinfo=UTC)


def make_incident(session: Session, key: str = "12") -> Incident:
    return q.upsert_incident(
        session,
        tracker="github",
        site="https://api.github.com",
        project="o/r",
        key=key,
        title="Checkout errors",
        state="closed",
        closed_at=at(10),
    )


# --- deliveries -------------------------------------------------------------------------


def test_redelivery_is_recorded_once(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        assert q.record_delivery(session, "github", "d-1", "issues", "enqueued", "i-1")
        assert not q.record_delivery(session, "github", "d-1", "issues", "enqueued", "i-1")
        # Same id from the other tracker is another delivery.
        assert q.record_delivery(session, "jira", "d-1", "jira:issue_updated", "ignored")
        # The duplicate left the transaction usable.
        q.create_job(session, "check_incident", "i-1", {"delivery": "d-1"})
    with session_scope(factory) as session:
        assert not q.record_delivery(session, "github", "d-1", "issues", "enqueued")
        assert session.scalar(select(func.count()).select_from(Delivery)) == 2
        assert session.scalar(select(func.count()).select_from(Job)) == 1


def test_delivery_values_are_checked(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        with pytest.raises(ValueError, match="outcome"):
            q.record_delivery(session, "github", "d-2", "issues", "maybe")
        with pytest.raises(ValueError, match="source"):
            q.record_delivery(session, "gitlab", "d-2", "issues", "enqueued")
        with pytest.raises(ValueError, match="delivery id"):
            q.record_delivery(session, "github", "", "issues", "enqueued")


def test_concurrent_redeliveries_record_exactly_one(factory: sessionmaker[Session]) -> None:
    threads = 20
    barrier = threading.Barrier(threads)
    results: list[bool] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait(timeout=10)
            with session_scope(factory) as session:
                new = q.record_delivery(session, "github", "same-id", "issues", "enqueued")
                if new:
                    q.create_job(session, "check_incident", "i-1")
            results.append(new)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    workers = [threading.Thread(target=deliver) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert errors == []
    assert sorted(results) == [False] * (threads - 1) + [True]
    with session_scope(factory) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 1
        assert session.scalar(select(func.count()).select_from(Job)) == 1


def test_failed_transaction_leaves_nothing_half_written(factory: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), session_scope(factory) as session:
        q.record_delivery(session, "github", "d-3", "issues", "enqueued")
        q.create_job(session, "check_incident", "i-3")
        raise RuntimeError("queue down")
    with session_scope(factory) as session:
        assert q.record_delivery(session, "github", "d-3", "issues", "enqueued")
        assert session.scalar(select(func.count()).select_from(Job)) == 0


# --- incidents and postmortems ----------------------------------------------------------


def test_upsert_incident_creates_then_updates(factory: sessionmaker[Session]) -> None:
    ref = IncidentRef("github", "https://api.github.com/", "o/r", "12")
    with session_scope(factory) as session:
        incident = q.upsert_incident(session, **vars(ref), title="Outage", state="open")
        assert incident.id == ref.id == "github:https://api.github.com:o/r#12"
        assert incident.site == "https://api.github.com"
        created = incident.created_at
    with session_scope(factory) as session:
        incident = q.upsert_incident(
            session, **vars(ref), state="closed", closed_at=at(9), verdict="missing"
        )
        assert (incident.title, incident.state, incident.verdict) == (
            "Outage",
            "closed",
            "missing",
        )
    with session_scope(factory) as session:
        stored = session.get(Incident, ref.id)
        assert stored is not None
        assert stored.closed_at == at(9)
        assert stored.created_at == created
        assert stored.updated_at >= created
        assert session.scalar(select(func.count()).select_from(Incident)) == 1
        jira = q.upsert_incident(session, "jira", "https://acme.atlassian.net", "OPS", "OPS-7")
        assert jira.id == "jira:https://acme.atlassian.net:OPS:OPS-7"
        # The id may come along (the worker passes the ref's), but must agree.
        assert q.upsert_incident(session, **vars(ref), id=ref.id) is stored
        with pytest.raises(ValueError, match="does not match"):
            q.upsert_incident(session, **vars(ref), id="github:elsewhere#1")


def test_upsert_incident_rejects_unknown_fields_and_verdicts(
    factory: sessionmaker[Session],
) -> None:
    with session_scope(factory) as session:
        with pytest.raises(TypeError, match="colour"):
            q.upsert_incident(session, "github", "https://api.github.com", "o/r", "1", colour=1)
        with pytest.raises(ValueError, match="verdict"):
            q.upsert_incident(session, "github", "https://api.github.com", "o/r", "1", verdict="?")


def test_postmortem_links(factory: sessionmaker[Session]) -> None:
    pm = {"kind": "issue", "locator": "o/r#40", "url": "https://github.com/o/r/issues/40"}
    with session_scope(factory) as session:
        first, second = make_incident(session, "12"), make_incident(session, "13")
        linked = q.link_postmortem(session, first, pm)
        assert q.link_postmortem(session, first, {**pm, "title": "PM: checkout"}) is linked
        q.link_postmortem(session, second, pm)
        other = q.link_postmortem(session, second, kind="file", locator="o/r:pm.md@main")
        pm_id = linked.id
        assert pm_id == "github:https://api.github.com:issue:o/r#40"
    with session_scope(factory) as session:
        incidents = q.incidents_by_postmortem(session, pm_id)
        assert [i.key for i in incidents] == ["12", "13"]
        assert incidents[0].postmortems[0].title == "PM: checkout"
        # The incident no longer links the issue, only the file.
        second = session.get(Incident, incidents[1].id)
        assert second is not None
        kept = q.set_postmortems(session, second, [{"kind": "file", "locator": "o/r:pm.md@main"}])
        assert [p.id for p in kept] == [other.id]
    with session_scope(factory) as session:
        assert [i.key for i in q.incidents_by_postmortem(session, pm_id)] == ["12"]
        assert q.incidents_by_postmortem(session, "nothing") == []
        # A webhook names the edited postmortem issue as a ref, not by locator.
        pm_issue = IncidentRef("github", "https://api.github.com", "o/r", "40")
        assert [i.key for i in q.incidents_by_postmortem_locator(session, pm_issue)] == ["12"]
        other_issue = IncidentRef("github", "https://api.github.com", "o/r", "41")
        assert q.incidents_by_postmortem_locator(session, other_issue) == []


# --- analyses and decisions -------------------------------------------------------------


def finding(rule: str, sentence: str, text: str, start: int) -> dict:
    return {
        "rule": rule,
        "category": "blame",
        "severity": "warning",
        "message": f"{rule} message",
        "suggestion": "What made this possible?",
        "text": text,
        "sentence": sentence,
        "start": start,
        "end": start + len(text),
        "line": 3,
        "column": 1,
        "end_line": 3,
        "end_column": 1 + len(text),
        "unknown_key": "ignored",
    }


def analyse(session: Session, incident_id: str, findings: list, verdict: str = "needs-review"):
    return q.save_analysis(
        session,
        incident_id,
        None,
        text="the text",
        format="markdown",
        pack_name="default",
        pack_version="3",
        model="en_core_web_sm",
        verdict=verdict,
        findings=findings,
        action_items=[{"text": "Add a runbook", "owner": "sre", "tracking": ["OPS-9"]}],
        summary={"flags": len(findings), "missing": []},
    )


def test_save_analysis_stores_findings(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        incident_id = make_incident(session).id
        saved = analyse(
            session, incident_id, [finding("human-error", "It was human error.", "human error", 7)]
        )
        analysis_id = saved.id
    with session_scope(factory) as session:
        latest = q.latest_analysis(session, incident_id)
        assert latest is not None and latest.id == analysis_id
        assert (latest.pack_name, latest.pack_version, latest.verdict) == (
            "default",
            "3",
            "needs-review",
        )
        assert latest.action_items[0]["tracking"] == ["OPS-9"]
        assert latest.summary == {"flags": 1, "missing": []}
        (stored,) = latest.findings
        assert (stored.rule, stored.text, stored.start, stored.end, stored.suppressed) == (
            "human-error",
            "human error",
            7,
            18,
            False,
        )
        assert stored.fingerprint == fingerprint("human-error", "It was human error.")
        assert stored.decision is None
        assert q.latest_analysis(session, "no-such-incident") is None


def test_decisions_carry_over_by_fingerprint(factory: sessionmaker[Session]) -> None:
    blame = "Bob forgot to run the migration."
    hero = "Alice saved the day."
    with session_scope(factory) as session:
        incident_id = make_incident(session).id
        first = analyse(
            session,
            incident_id,
            [
                finding("person-agent", blame, "Bob forgot", 0),
                finding("heroics", hero, "saved the day", 40),
            ],
        )
        accepted, dismissed = first.findings
        q.decide_finding(session, accepted.id, "accepted", "maria")
        q.decide_finding(session, dismissed.id, "false-positive", "maria", reason="a quote")
    with session_scope(factory) as session:
        # The postmortem was edited: the sentence moved and its spacing and case changed,
        # and a new flag appeared.
        second = analyse(
            session,
            incident_id,
            [
                finding("person-agent", "  bob forgot to run\nthe migration. ", "bob forgot", 120),
                finding("heroics", hero, "saved the day", 200),
                finding("hindsight", "Obviously it was wrong.", "Obviously", 300),
            ],
        )
        by_rule = {f.rule: f for f in second.findings}
        assert by_rule["person-agent"].decision == "accepted"
        assert by_rule["person-agent"].decided_by == "maria"
        assert by_rule["heroics"].decision == "false-positive"
        assert by_rule["heroics"].reason == "a quote"
        assert by_rule["hindsight"].decision is None
        assert q.decisions_for(session, incident_id) == {
            fingerprint("person-agent", blame): "accepted",
            fingerprint("heroics", hero): "false-positive",
        }
        assert q.dismissed_fingerprints(session, incident_id) == {fingerprint("heroics", hero)}
        # A reviewer takes a decision back on the current analysis ...
        q.decide_finding(session, by_rule["heroics"].id, None, "maria")
    with session_scope(factory) as session:
        # ... and the older analysis's decision does not come back.
        third = analyse(session, incident_id, [finding("heroics", hero, "saved the day", 9)])
        assert third.findings[0].decision is None
        assert q.decisions_for(session, incident_id) == {
            fingerprint("person-agent", blame): "accepted"
        }
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions == ["finding.accepted", "finding.false-positive", "finding.undecided"]


def test_nlp_findings_are_stored_with_offsets(factory: sessionmaker[Session]) -> None:
    model = pytest.importorskip("nlp.model")
    record = model.Finding(
        rule="human-error",
        category="blame",
        severity="error",
        message="m",
        suggestion="s",
        start=5,
        end=16,
        line=1,
        column=6,
        end_line=1,
        end_column=17,
        text="human error",
        sentence="Root human error here.",
        suppressed=True,
        justification="quoting the customer",
    )
    with session_scope(factory) as session:
        incident_id = make_incident(session).id
        (stored,) = analyse(session, incident_id, [record]).findings
        assert (stored.start, stored.end, stored.sentence) == (5, 16, "Root human error here.")
        assert stored.suppressed and stored.justification == "quoting the customer"
        if hasattr(record, "fingerprint"):
            assert stored.fingerprint == record.fingerprint


def test_false_positive_needs_a_reason(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        incident_id = make_incident(session).id
        (one,) = analyse(session, incident_id, [finding("r", "S.", "S", 0)]).findings
        with pytest.raises(ValueError, match="reason"):
            q.decide_finding(session, one.id, "false-positive", "maria", reason=" ")
        with pytest.raises(ValueError, match="decision"):
            q.decide_finding(session, one.id, "maybe", "maria")


def test_fingerprint_ignores_spacing_and_case_but_not_rule() -> None:
    assert fingerprint("r", "Bob  did\nit.") == fingerprint("r", "bob did it.")
    assert fingerprint("r", "Bob did it.") != fingerprint("q", "Bob did it.")
    assert fingerprint("r", "", "fallback text") == fingerprint("r", "Fallback  text")


def test_report_bookkeeping(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        incident_id = make_incident(session).id
        assert not q.checked_since(session, incident_id, at(8))
        q.upsert_incident(
            session, "github", "https://api.github.com", "o/r", "12", last_checked_at=at(11)
        )
        q.set_reported(session, incident_id, comment_id="IC_99", verdict="needs-review")
    with session_scope(factory) as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        assert (incident.comment_id, incident.verdict) == ("IC_99", "needs-review")
        assert q.checked_since(session, incident_id, at(11))
        assert not q.checked_since(session, incident_id, at(11, 1))
        assert not q.checked_since(session, "never-seen", at(0))
        with pytest.raises(LookupError):
            q.set_reported(session, "never-seen", comment_id=None, verdict=None)


# --- jobs -------------------------------------------------------------------------------


def test_job_retries_then_fails_after_max_attempts(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        job_id = q.create_job(session, "check_incident", "i-1", {"ref": "o/r#1"}, 3).id
    for attempt in (1, 2):
        with session_scope(factory) as session:
            job = q.start_job(session, job_id)
            assert job is not None
            assert (job.status, job.attempts) == ("running", attempt)
            job = q.fail_job(session, job_id, f"HTTP 502 #{attempt}", retry_at=at(12, attempt))
            assert (job.status, job.next_attempt_at) == ("queued", at(12, attempt))
    with session_scope(factory) as session:
        assert q.start_job(session, job_id) is not None
        job = q.fail_job(session, job_id, "HTTP 502 #3", retry_at=at(13))
        assert (job.status, job.attempts, job.next_attempt_at) == ("failed", 3, None)
        assert job.finished_at is not None
        # A stale duplicate queue message finds nothing to run.
        assert q.start_job(session, job_id) is None
    with session_scope(factory) as session:
        (failed,) = q.failed_jobs(session)
        assert (failed.id, failed.last_error, failed.payload) == (
            job_id,
            "HTTP 502 #3",
            {"ref": "o/r#1"},
        )
        retried = q.retry_job(session, job_id)
        assert (retried.status, retried.attempts, retried.finished_at) == ("queued", 0, None)
    with session_scope(factory) as session:
        assert q.failed_jobs(session) == []
        assert q.start_job(session, job_id) is not None
        done = q.finish_job(session, job_id)
        assert (done.status, done.attempts) == ("done", 1)
        assert q.start_job(session, job_id) is None


def test_permanent_error_fails_at_once(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        job = q.create_job(session, "check_incident", "i-1")
        q.start_job(session, job.id)
        assert q.fail_job(session, job.id, "404 Not Found").status == "failed"
        assert q.fail_job(session, job.id, "x" * 50_000).last_error is not None
        assert len(q.fail_job(session, job.id, "x" * 50_000).last_error or "") < 10_100


def test_requeue_does_not_spend_an_attempt(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        job = q.create_job(session, "check_incident", "i-1", max_attempts=1)
        for _ in range(3):  # another job holds the incident's lock, three times over
            assert q.start_job(session, job.id) is not None
            assert q.requeue_job(session, job.id).attempts == 0
        assert q.start_job(session, job.id).attempts == 1
        q.finish_job(session, job.id)
        with pytest.raises(q.JobStateError):
            q.requeue_job(session, job.id)


def test_running_job_is_not_retried_by_accident(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        job = q.create_job(session, "reconcile", None, {"since": "7d"})
        q.start_job(session, job.id)
        with pytest.raises(q.JobStateError):
            q.retry_job(session, job.id)
        assert q.retry_job(session, job.id, force=True).status == "queued"
        with pytest.raises(LookupError):
            q.start_job(session, 999_999)


def test_pending_jobs_after_a_crash(factory: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with session_scope(factory) as session:
        stale_running = q.create_job(session, "check_incident", "a", max_attempts=2)
        q.start_job(session, stale_running.id)
        queued = q.create_job(session, "check_incident", "b")
        later = q.create_job(session, "check_incident", "c")
        q.start_job(session, later.id)
        q.fail_job(session, later.id, "rate limited", retry_at=now + timedelta(hours=1))
        done = q.create_job(session, "check_incident", "d")
        q.start_job(session, done.id)
        q.finish_job(session, done.id)
        ids = (stale_running.id, queued.id)
    with session_scope(factory) as session:
        assert q.pending_jobs(session, older_than=now - timedelta(minutes=5)) == []
        pending = q.pending_jobs(session, older_than=now + timedelta(minutes=5))
        assert [j.id for j in pending] == list(ids)
    with session_scope(factory) as session:
        # The worker died during attempt 1 of 2: recovery runs attempt 2; if that dies
        # too, the job fails instead of crash-looping.
        assert q.start_job(session, ids[0]).attempts == 2
        assert q.start_job(session, ids[0]) is None
        (failed,) = q.failed_jobs(session)
        assert "never finished" in (failed.last_error or "")


# --- audit ------------------------------------------------------------------------------


def test_audit_log(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        q.audit(
            session,
            "maria",
            "incident.waive",
            "incident",
            "i-1",
            reason="drill",
            detail={"until": "2026-04-01", "n": [1, 2]},
        )
        q.audit(session, "cli", "job.retry", "job", 7)
    with session_scope(factory) as session:
        first, second = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        assert (first.actor, first.action, first.target_id, first.reason) == (
            "maria",
            "incident.waive",
            "i-1",
            "drill",
        )
        assert first.detail == {"until": "2026-04-01", "n": [1, 2]}
        assert first.at.tzinfo is UTC
        assert (second.target_id, second.detail, second.reason) == ("7", None, None)


# --- database behaviour -----------------------------------------------------------------


def test_timezones_round_trip_as_utc(engine: Engine, factory: sessionmaker[Session]) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    closed = datetime(2026, 3, 1, 15, 30, 0, 123456, tzinfo=india)
    with session_scope(factory) as session:
        incident = make_incident(session)
        incident.closed_at = closed
        incident_id = incident.id
    with session_scope(factory) as session:
        if engine.dialect.name == "postgresql":
            # The server hands timestamptz back in the session's zone; the store must not.
            session.execute(text("SET LOCAL TIME ZONE 'America/Los_Angeles'"))
        stored = session.get(Incident, incident_id)
        assert stored is not None and stored.closed_at is not None
        assert stored.closed_at == closed
        assert stored.closed_at.tzinfo is UTC
        assert stored.closed_at.hour == 10
        # Comparisons work across offsets, also on SQLite's text timestamps.
        before = datetime(2026, 3, 1, 5, 59, tzinfo=timezone(timedelta(hours=-4)))
        after = datetime(2026, 3, 1, 6, 1, tzinfo=timezone(timedelta(hours=-4)))
        assert session.scalars(select(Incident.id).where(Incident.closed_at > before)).all() == [
            incident_id
        ]
        assert session.scalars(select(Incident.id).where(Incident.closed_at > after)).all() == []


def test_naive_datetimes_are_refused(factory: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError) as caught, session_scope(factory) as session:
        make_incident(session).closed_at = datetime(2026, 3, 1, 12, 0)
        session.flush()
    assert isinstance(caught.value.orig, ValueError)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert path.exists()
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(factory: sessionmaker[Session]) -> None:
    with pytest.raises(IntegrityError), session_scope(factory) as session:
        session.add(Finding(analysis_id=424242, rule="r", fingerprint="f"))


def test_ping_and_sessions_report_an_unreachable_database(engine: Engine) -> None:
    ping(engine)
    dead = make_engine(DEAD_POSTGRES)
    try:
        with pytest.raises(DatabaseUnavailable, match="database unavailable"):
            ping(dead)
        dead_sessions = session_factory(dead)
        with pytest.raises(OperationalError) as caught, session_scope(dead_sessions) as session:
            q.record_delivery(session, "github", "d-9", "issues", "enqueued")
        assert is_unavailable(caught.value)
        assert not is_unavailable(IntegrityError("INSERT", {}, Exception("duplicate")))
    finally:
        dead.dispose()


def test_urls_pick_the_installed_postgres_driver() -> None:
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"


# --- file permissions -------------------------------------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    # The usual default: files 0644 and directories 0755 unless created otherwise.
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_the_data_directory_and_database_files_are_private(
    tmp_path: Path, umask_022: None
) -> None:
    # Password hashes and every postmortem's text live here: nobody else on the machine
    # may read them, whatever the umask.
    from settings import Settings, secret_key
    from worker.jobs import make_huey

    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    engine = make_engine(settings.database)
    try:
        with engine.begin() as connection:  # WAL mode: the -wal and -shm files appear
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
        huey = make_huey(settings)
        huey.storage.enqueue(b"job", 0)
        secret_key(settings)
        assert {"pmguard.db", "pmguard.db-wal", "pmguard.db-shm", "queue.db",
                "secret_key"} <= {p.name for p in data.iterdir()}
        assert data.stat().st_mode & 0o777 == 0o700
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in data.iterdir()}
        assert set(modes.values()) == {"0o600"}, modes
    finally:
        engine.dispose()
