"""The webhook's durable write: a delivery row and its job row, committed before the 202.

This is the one write on the request path, so it is built for throughput:

- The statements are compiled once per engine and run on one DBAPI connection per
  process, outside SQLAlchemy's per-execution machinery.
- On PostgreSQL both rows go in one statement (a data-modifying CTE): one round trip, in
  autocommit.
- Concurrent deliveries in one process share a transaction (group commit). Whichever
  request thread takes the write lock first writes every delivery waiting at that moment
  and commits once; the others find their result ready. Under a single-threaded worker a
  batch is one delivery and nothing changes; under threaded workers the commit and its
  fsync are shared.
- On SQLite, writers in different processes queue on an advisory file lock before
  `BEGIN IMMEDIATE`. SQLite's own busy handler polls with sleeps of 1 to 100 ms, so two
  web processes contending for the write lock would sleep far longer than a commit
  takes (p99 25-27 ms against 15-17 ms with the lock, bench/webhooks.py); a blocked
  `flock` wakes as soon as the holder releases it.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Integer, String, bindparam, literal, select
from sqlalchemy import exc as sa_exc

from store.models import Delivery, Job
from store.types import UTCDateTime, utcnow
from worker.metrics import INTAKE_BATCH

log = logging.getLogger("pmguard.intake")

_INHERITED: list[Any] = []  # connections a forked child got from its parent; never used

POWER_CUT = "power-cut"  # fsynced before the 202
PROCESS_CRASH = "process-crash"  # on its way to the disk, safe from a killed process
# Under process-crash durability on SQLite, how soon after a commit the WAL is fsynced.
WAL_FLUSH_SECONDS = 0.05
MAX_BATCH = 64  # deliveries per transaction at most: bounds one commit's latency

_deliveries = Delivery.__table__
_jobs = Job.__table__


@dataclass(frozen=True)
class DeliveryRecord:
    """What a relevant delivery leaves behind: the delivery and the job it asks for."""

    source: str
    delivery_id: str
    event: str
    incident_id: str | None
    kind: str
    payload: Mapping[str, Any]
    max_attempts: int


@dataclass(eq=False)
class _Slot:
    record: DeliveryRecord
    done: bool = False
    job_id: int | None = None
    error: BaseException | None = None


def _params(record: DeliveryRecord) -> dict[str, Any]:
    now = utcnow()
    return {
        "source": record.source, "delivery_id": record.delivery_id, "event": record.event,
        "incident_id": record.incident_id, "kind": record.kind,
        "payload": dict(record.payload), "max_attempts": record.max_attempts, "now": now,
    }


def _delivery_values() -> dict[str, Any]:
    return {
        "source": bindparam("source", type_=String),
        "delivery_id": bindparam("delivery_id", type_=String),
        "event": bindparam("event", type_=String),
        "outcome": "enqueued",
        "incident_id": bindparam("incident_id", type_=String),
        "received_at": bindparam("now", type_=UTCDateTime),
    }


def _job_values() -> dict[str, Any]:
    return {
        "kind": bindparam("kind", type_=String),
        "incident_id": bindparam("incident_id", type_=String),
        "payload": bindparam("payload", type_=_jobs.c.payload.type),
        "status": literal("queued"),
        "attempts": literal(0),
        "max_attempts": bindparam("max_attempts", type_=Integer),
        "created_at": bindparam("now", type_=UTCDateTime),
        "updated_at": bindparam("now", type_=UTCDateTime),
    }


class _Compiled:
    """One statement compiled once for a dialect, run on a DBAPI cursor.

    The webhook path skips SQLAlchemy's per-execution machinery (connection wrapper,
    events, result objects): at a few hundred microseconds a delivery it cost as much as
    the commit. SQLAlchemy still writes the SQL and converts the typed values, through the
    types' own bind processors, so rows are stored exactly as the ORM stores them.
    """

    def __init__(self, statement, dialect, typed: dict[str, Any]) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.order = compiled.positiontup if dialect.positional else None
        # Values bound by the statement itself (the literals), kept; ours are per call.
        every = compiled.construct_params(dict.fromkeys(typed))
        self.fixed = {k: v for k, v in every.items() if k not in typed}
        self.processors = {
            # The dialect's own variant of each type (PostgreSQL's JSON wraps for psycopg).
            name: type_.dialect_impl(dialect).bind_processor(dialect)
            for name, type_ in typed.items()
        }

    def params(self, values: dict[str, Any]) -> dict[str, Any] | list[Any]:
        bound = dict(self.fixed)
        for name, process in self.processors.items():
            value = values[name]
            bound[name] = process(value) if process is not None else value
        if self.order is None:
            return bound
        return [bound[name] for name in self.order]


class _Statements:
    """The insert statements for one dialect, compiled once."""

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect
        self.postgresql = dialect.name == "postgresql"
        if self.postgresql:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        typed = {
            "source": String(), "delivery_id": String(), "event": String(),
            "incident_id": String(), "kind": String(), "payload": _jobs.c.payload.type,
            "max_attempts": Integer(), "now": UTCDateTime(),
        }
        delivery = (
            insert(_deliveries)
            .values(**_delivery_values())
            .on_conflict_do_nothing(index_elements=["source", "delivery_id"])
            .returning(_deliveries.c.id)
        )
        if self.postgresql:
            # One statement: the job row is selected from the delivery insert's RETURNING,
            # so a redelivery (no row returned) inserts no job.
            inserted = delivery.cte("inserted_delivery")
            values = _job_values()
            both = (
                insert(_jobs)
                .from_select(list(values), select(*values.values()).select_from(inserted))
                .returning(_jobs.c.id)
            )
            self.both = _Compiled(both, dialect, typed)
        else:
            self.delivery = _Compiled(delivery, dialect, {
                k: typed[k] for k in ("source", "delivery_id", "event", "incident_id", "now")})
            self.job = _Compiled(
                insert(_jobs).values(**_job_values()).returning(_jobs.c.id), dialect,
                {k: typed[k] for k in ("kind", "incident_id", "payload", "max_attempts",
                                       "now")})

    def write(self, cursor, values: dict[str, Any]) -> int | None:
        if self.postgresql:
            cursor.execute(self.both.sql, self.both.params(values))
            row = cursor.fetchone()
            return None if row is None else row[0]
        cursor.execute(self.delivery.sql, self.delivery.params(values))
        if cursor.fetchone() is None:
            return None
        cursor.execute(self.job.sql, self.job.params(values))
        return cursor.fetchone()[0]


class _WriterLock:
    """An advisory lock shared by every process writing one SQLite file (see the module
    docstring); a no-op for other databases and for in-memory SQLite."""

    def __init__(self, engine: Engine) -> None:
        database = engine.url.database or ""
        self.path: Path | None = None
        if engine.dialect.name == "sqlite" and database not in ("", ":memory:") \
                and not database.startswith("file:"):
            self.path = Path(database).expanduser().resolve().with_name(
                Path(database).name + ".intake-lock")
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        if self.path is None:
            return
        if self._fd is None or self._pid != os.getpid():
            # A forked child must not share the parent's open file description: flock
            # locks belong to it, so parent and child would never exclude each other.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_exc: object) -> None:
        if self.path is not None and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


class _WalFlusher:
    """Process-crash durability on SQLite: the WAL is fsynced from a background thread
    within `interval` of a commit, so a power cut loses at most that much of what was
    answered 202 (PostgreSQL's WAL writer gives synchronous_commit=off the same bound)."""

    def __init__(self, wal_path: Path, interval: float) -> None:
        self.path = wal_path
        self.interval = interval
        self.flushes = 0
        self._dirty = threading.Event()
        self._fd: int | None = None
        self._pid = 0

    def committed(self) -> None:
        if self._pid != os.getpid():  # first commit in this process (or after a fork)
            self._pid = os.getpid()
            self._dirty = threading.Event()
            self._fd = None
            threading.Thread(target=self._run, name="pmguard-wal-flush", daemon=True).start()
            atexit.register(self.flush)
        self._dirty.set()

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            time.sleep(self.interval)
            # Cleared before the fsync: a commit landing during it sets it again.
            self._dirty.clear()
            self.flush()

    def flush(self) -> None:
        try:
            if self._fd is None or os.fstat(self._fd).st_nlink == 0:
                # The WAL is deleted when its last connection closes; a new one is a new
                # file.
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                if not self.path.exists():
                    return  # checkpointed into the database and removed: nothing to sync
                self._fd = os.open(self.path, os.O_RDONLY)
            os.fdatasync(self._fd)
            self.flushes += 1
        except OSError:
            log.exception("could not fsync %s; the next commit tries again", self.path)


class Intake:
    """Records relevant deliveries and their jobs, grouping concurrent ones per commit."""

    def __init__(
        self, engine: Engine, *, max_batch: int = MAX_BATCH, durability: str = POWER_CUT,
    ) -> None:
        if durability not in (POWER_CUT, PROCESS_CRASH):
            raise ValueError(f"durability must be {POWER_CUT!r} or {PROCESS_CRASH!r}")
        self.engine = engine
        self.max_batch = max_batch
        self.durability = durability
        self._flusher: _WalFlusher | None = None
        database = engine.url.database or ""
        if durability == PROCESS_CRASH and engine.dialect.name == "sqlite" \
                and database not in ("", ":memory:") and not database.startswith("file:"):
            wal = Path(database).expanduser().resolve()
            self._flusher = _WalFlusher(wal.with_name(wal.name + "-wal"), WAL_FLUSH_SECONDS)
        self._statements = _Statements(engine)
        self._file_lock = _WriterLock(engine)
        self._dbapi_error = engine.dialect.loaded_dbapi.Error
        self._raw = None
        self._pending: list[_Slot] = []
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.batches = 0  # transactions committed, for tests and the benchmark
        self.largest_batch = 0
        # gunicorn --preload builds the app before forking its workers.
        os.register_at_fork(after_in_child=partial(_after_fork, weakref.ref(self)))

    def _forked(self) -> None:
        # A lock held by another thread at fork time would stay held forever in the child.
        self._pending = []
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()
        if self._raw is not None:
            # The parent's connection: closing it here would end the parent's session too
            # (PostgreSQL's terminate message goes down the shared socket), so it is kept
            # out of reach of the garbage collector and never used.
            _INHERITED.append(self._raw)
            self._raw = None

    def accept(self, record: DeliveryRecord) -> int | None:
        """Commit the delivery and its job; the job id, or None for a redelivery.

        Raises what the database raised (an `OperationalError` when it is unreachable or
        locked for too long); nothing is committed for this delivery then.
        """
        if not record.delivery_id:
            raise ValueError("a delivery needs its delivery id (the idempotency key)")
        slot = _Slot(record)
        with self._pending_lock:
            self._pending.append(slot)
        with self._write_lock:
            while not slot.done:
                with self._pending_lock:
                    batch = self._pending[: self.max_batch]
                    del self._pending[: self.max_batch]
                self._write(batch)
        if slot.error is not None:
            raise slot.error
        return slot.job_id

    def _write(self, batch: list[_Slot]) -> None:
        try:
            self._commit(batch)
        except sa_exc.OperationalError as error:
            # The database is down or locked: every delivery in the batch fails alike and
            # its sender retries.
            self._finish(batch, error=error)
        except Exception as error:
            if len(batch) == 1:
                self._finish(batch, error=error)
                return
            # One bad delivery must not fail the others: write each on its own.
            for slot in batch:
                self._write([slot])
        except BaseException as error:
            self._finish(batch, error=error)
            raise

    def _commit(self, batch: list[_Slot]) -> None:
        postgresql = self._statements.postgresql
        cursor = None
        try:
            cursor = self._connection().cursor()
            with self._file_lock:
                if postgresql and len(batch) == 1:  # one statement, atomic on its own
                    results = [self._statements.write(cursor, _params(batch[0].record))]
                else:
                    cursor.execute("BEGIN" if postgresql else "BEGIN IMMEDIATE")
                    try:
                        results = [self._statements.write(cursor, _params(slot.record))
                                   for slot in batch]
                        cursor.execute("COMMIT")
                    except BaseException:
                        with suppress(Exception):
                            cursor.execute("ROLLBACK")
                        raise
        except self._dbapi_error as orig:
            wrapped = sa_exc.DBAPIError.instance(
                None, None, orig, self._dbapi_error, dialect=self.engine.dialect)
            if isinstance(wrapped, (sa_exc.OperationalError, sa_exc.InterfaceError)):
                self._discard()  # the connection may be dead; the next write opens another
            raise wrapped from orig
        finally:
            if cursor is not None:
                with suppress(Exception):
                    cursor.close()
        if self._flusher is not None:
            self._flusher.committed()
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        INTAKE_BATCH.observe(len(batch))
        for slot, job_id in zip(batch, results, strict=True):
            slot.job_id = job_id
            slot.done = True

    def _connection(self):
        # One connection per process: only the thread holding the write lock uses it.
        if self._raw is None:
            raw = self.engine.raw_connection()
            driver = raw.driver_connection
            if self._statements.postgresql:
                # Autocommit: a single delivery is one statement and one round trip; a
                # batch brackets its statements with BEGIN and COMMIT itself.
                driver.autocommit = True
                if self.durability == PROCESS_CRASH:
                    # The commit returns before the WAL reaches the disk; the server
                    # flushes it within a few hundred milliseconds.
                    driver.execute("SET synchronous_commit TO off")
            elif self.durability == PROCESS_CRASH:
                # WAL without an fsync per commit: what a killed process wrote is kept.
                driver.execute("PRAGMA synchronous=NORMAL")
            self._raw = raw
        return self._raw

    def close(self) -> None:
        """Give back this process's connection (the next `accept` opens another)."""
        with self._write_lock:
            raw, self._raw = self._raw, None
            if raw is not None:
                with suppress(Exception):
                    raw.close()

    def _discard(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            with suppress(Exception):
                raw.invalidate()

    @staticmethod
    def _finish(batch: list[_Slot], *, error: BaseException) -> None:
        for slot in batch:
            slot.error = error
            slot.done = True


def _after_fork(ref: weakref.ref[Intake]) -> None:
    intake = ref()
    if intake is not None:
        intake._forked()
