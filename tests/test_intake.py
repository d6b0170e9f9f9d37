"""store.intake: the webhook's durable write, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy import exc as sa_exc

from store import queries
from store.db import make_engine, session_factory, session_scope
from store.intake import DeliveryRecord, Intake
from store.models import Base, Delivery, Job

PAYLOAD = {"tracker": "github", "site": "https://api.github.com", "project": "acme/ops",
           "key": "7", "reason": "closed", "delivery": "d-1"}


def record(delivery_id: str, **overrides) -> DeliveryRecord:
    values = dict(source="github", delivery_id=delivery_id, event="issues",
                  incident_id="github:https://api.github.com:acme/ops#7", kind="check",
                  payload=PAYLOAD, max_attempts=5)
    values.update(overrides)
    return DeliveryRecord(**values)


@pytest.fixture
def engine(empty_db: str) -> Iterator[Engine]:
    engine = make_engine(empty_db)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.scalar(select(func.count()).select_from(Delivery)),
                conn.scalar(select(func.count()).select_from(Job)))


def test_a_delivery_and_its_job_read_back_through_the_orm_as_written(engine: Engine) -> None:
    before = datetime.now(UTC)
    job_id = Intake(engine).accept(record("d-1"))
    with session_scope(session_factory(engine)) as session:
        job = session.get(Job, job_id)
        assert (job.kind, job.status, job.attempts, job.max_attempts) == ("check", "queued", 0, 5)
        assert job.payload == PAYLOAD
        assert before <= job.created_at == job.updated_at <= datetime.now(UTC)
        assert job.created_at.tzinfo is not None
        delivery = session.scalars(select(Delivery)).one()
        assert (delivery.source, delivery.delivery_id, delivery.outcome) == (
            "github", "d-1", "enqueued")
        assert delivery.received_at == job.created_at
        # The queries the worker and the dashboard use find it like any other job.
        assert [j.id for j in queries.recent_jobs(session)] == [job_id]


def test_timestamps_are_stored_in_the_same_form_as_the_orms(engine: Engine) -> None:
    # SQLite compares timestamps as text: rows written by the intake and by the ORM must
    # sort together by time, which a different text format would break.
    factory = session_factory(engine)

    def orm_job() -> int:
        with session_scope(factory) as session:
            job = queries.create_job(session, "check", None, {}, 5)
            session.flush()
            return job.id

    intake = Intake(engine)
    order = [orm_job(), intake.accept(record("d-1")), orm_job(), intake.accept(record("d-2"))]
    with engine.connect() as conn:
        by_time = list(conn.scalars(text("SELECT id FROM jobs ORDER BY created_at")))
        texts = list(conn.scalars(text("SELECT CAST(created_at AS TEXT) FROM jobs")))
    assert by_time == order
    if engine.dialect.name == "sqlite":
        assert len({re.sub(r"\d", "9", t) for t in texts}) == 1, texts


def test_a_redelivery_is_recorded_once_and_answers_none(engine: Engine) -> None:
    intake = Intake(engine)
    first = intake.accept(record("same"))
    assert first is not None
    assert intake.accept(record("same")) is None
    assert intake.accept(record("same", source="jira")) is not None  # other source, new key
    assert counts(engine) == (2, 2)


def test_a_replayed_body_under_a_new_delivery_id_is_a_duplicate(engine: Engine) -> None:
    # The delivery id is not signed, the body is: a captured delivery sent again with a
    # made-up id must not make another job.
    intake = Intake(engine)
    body = "ab" * 32
    assert intake.accept(record("first", body_sha256=body)) is not None
    assert intake.accept(record("made-up", body_sha256=body)) is None
    assert intake.accept(record("other", body_sha256="cd" * 32)) is not None
    # Rows without a body hash (recorded by other paths) never collide with each other.
    assert intake.accept(record("x1")) is not None and intake.accept(record("x2")) is not None
    assert counts(engine) == (4, 4)


def test_a_delivery_without_its_id_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="delivery id"):
        Intake(engine).accept(record(""))
    assert counts(engine) == (0, 0)


def _hold_and_release(intake: Intake, records: list[DeliveryRecord]) -> list:
    """Accept `records` from one thread each while the write lock is held, so they all
    wait together, then let them go: the next writer finds them all pending."""
    results: list = [None] * len(records)

    def run(i: int) -> None:
        try:
            results[i] = intake.accept(records[i])
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[i] = error

    intake._write_lock.acquire()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(records))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(intake._pending) < len(records) and time.monotonic() < deadline:
        time.sleep(0.005)
    intake._write_lock.release()
    for t in threads:
        t.join(10)
    return results


def test_deliveries_waiting_together_share_one_transaction(engine: Engine) -> None:
    intake = Intake(engine)
    results = _hold_and_release(intake, [record(f"d-{i}") for i in range(6)])
    assert all(isinstance(r, int) for r in results) and len(set(results)) == 6
    assert (intake.batches, intake.largest_batch) == (1, 6)
    assert counts(engine) == (6, 6)


def test_a_duplicate_inside_one_batch_is_still_a_duplicate(engine: Engine) -> None:
    intake = Intake(engine)
    results = _hold_and_release(intake, [record("a"), record("b"), record("a")])
    assert sorted(r is None for r in results) == [False, False, True]
    assert counts(engine) == (2, 2)


def test_one_bad_delivery_does_not_fail_the_others_in_its_batch(engine: Engine) -> None:
    intake = Intake(engine)
    bad = record("bad", payload={"not json": object()})
    results = _hold_and_release(intake, [record("a"), bad, record("b")])
    assert isinstance(results[0], int) and isinstance(results[2], int)
    assert isinstance(results[1], Exception)
    assert counts(engine) == (2, 2)
    with engine.connect() as conn:
        ids = set(conn.scalars(select(Delivery.delivery_id)))
    assert ids == {"a", "b"}


def test_a_batch_is_capped(engine: Engine) -> None:
    intake = Intake(engine, max_batch=2)
    results = _hold_and_release(intake, [record(f"d-{i}") for i in range(5)])
    assert all(isinstance(r, int) for r in results)
    assert intake.largest_batch == 2 and intake.batches == 3


def test_an_unreachable_database_raises_sqlalchemys_operational_error() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/pmguard")
    with pytest.raises(sa_exc.OperationalError):
        Intake(engine).accept(record("d-1"))


def test_a_dropped_connection_fails_one_delivery_and_the_next_reconnects(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url)
    Base.metadata.create_all(engine)
    intake = Intake(engine)
    assert intake.accept(record("before")) is not None
    pid = intake._raw.driver_connection.info.backend_pid
    with make_engine(postgres_url).connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.commit()
    with pytest.raises(sa_exc.OperationalError):
        intake.accept(record("lost"))
    assert intake.accept(record("after")) is not None
    with engine.connect() as conn:
        assert set(conn.scalars(select(Delivery.delivery_id))) == {"before", "after"}


@pytest.fixture
def postgres_url() -> Iterator[str]:
    from store.testing import temporary_database, unreachable_reason
    from tests.service_env import unavailable

    reason = unreachable_reason()
    if reason:
        unavailable(reason)
    with temporary_database() as url:
        yield url


def _write_many(url: str, prefix: str, count: int, queue) -> None:
    intake = Intake(make_engine(url))
    failures = 0
    for i in range(count):
        try:
            intake.accept(record(f"{prefix}-{i}"))
        except Exception:  # noqa: BLE001 - counted and reported to the parent
            failures += 1
    queue.put(failures)


def test_processes_writing_one_sqlite_file_lose_nothing(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'pmguard.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    procs = [context.Process(target=_write_many, args=(url, f"p{n}", 150, queue))
             for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [queue.get(timeout=5) for _ in procs] == [0, 0, 0]
    assert counts(engine) == (450, 450)


def test_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(
    engine: Engine,
) -> None:
    # gunicorn --preload forks workers from a process that built the app.

    intake = Intake(engine)
    assert intake.accept(record("parent-1")) is not None
    pid = os.fork()
    if pid == 0:  # the child: write through a connection of its own, then leave at once
        code = 0
        try:
            code = 0 if intake.accept(record("child")) is not None else 1
        except BaseException:  # noqa: BLE001 - reported through the exit status
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert intake.accept(record("parent-2")) is not None
    with engine.connect() as conn:
        assert set(conn.scalars(select(Delivery.delivery_id))) == {
            "parent-1", "child", "parent-2"}


def test_close_gives_the_connection_back_and_the_next_write_opens_another(
    engine: Engine,
) -> None:
    intake = Intake(engine)
    assert intake.accept(record("one")) is not None
    intake.close()
    assert intake._raw is None
    assert intake.accept(record("two")) is not None
    assert counts(engine) == (2, 2)


def _durability_setting(intake: Intake) -> str:
    driver = intake._raw.driver_connection
    if intake.engine.dialect.name == "postgresql":
        return driver.execute("SHOW synchronous_commit").fetchone()[0]
    return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
        driver.execute("PRAGMA synchronous").fetchone()[0]]


def test_by_default_a_delivery_is_fsynced_before_it_is_answered(engine: Engine) -> None:
    intake = Intake(engine)
    intake.accept(record("d-1"))
    assert _durability_setting(intake) in ("on", "FULL")


def test_process_crash_durability_skips_the_fsync_on_the_intakes_connection_only(
    engine: Engine,
) -> None:
    intake = Intake(engine, durability="process-crash")
    assert intake.accept(record("d-1")) is not None
    assert _durability_setting(intake) in ("off", "NORMAL")
    with engine.connect() as conn:  # every other connection keeps full durability
        setting = conn.exec_driver_sql(
            "SHOW synchronous_commit" if engine.dialect.name == "postgresql"
            else "PRAGMA synchronous").scalar()
        assert setting in ("on", 2)


def test_an_unknown_durability_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="power-cut"):
        Intake(engine, durability="sometimes")


def test_process_crash_durability_on_sqlite_fsyncs_the_wal_soon_after_a_commit(
    tmp_path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'pmguard.db'}")
    Base.metadata.create_all(engine)
    intake = Intake(engine, durability="process-crash")
    intake.accept(record("d-1"))
    flusher = intake._flusher
    deadline = time.monotonic() + 5
    while flusher.flushes == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flusher.flushes >= 1
    # Quiet: no commit, no fsync.
    before = flusher.flushes
    time.sleep(0.2)
    assert flusher.flushes == before
    # The WAL may be removed and made anew when every connection closes: still synced.
    intake.close()
    engine.dispose()
    intake.accept(record("d-2"))
    deadline = time.monotonic() + 5
    while flusher.flushes == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flusher.flushes > before
    assert os.fstat(flusher._fd).st_nlink == 1


def test_full_durability_and_postgresql_need_no_flusher(engine: Engine) -> None:
    assert Intake(engine)._flusher is None
    if engine.dialect.name == "postgresql":  # the server's WAL writer bounds the loss
        assert Intake(engine, durability="process-crash")._flusher is None
