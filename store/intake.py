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
- On SQLite, writers in different processes queue on a file lock before
  `BEGIN IMMEDIATE` (`store.sqlite_files.WriterLock`): p99 15-17 ms against 25-27 ms
  with SQLite's sleeping busy handler alone (bench/webhooks.py).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from store.db import sqlite_file
from store.intake_sql import DeliveryRecord, Statements, params_for
from store.sqlite_files import WalFlusher, WriterLock

_INHERITED: list[Any] = []  # connections a forked child got from its parent; never used

POWER_CUT = "power-cut"  # fsynced before the 202
PROCESS_CRASH = "process-crash"  # on its way to the disk, safe from a killed process
# Under process-crash durability on SQLite, how soon after a commit the WAL is fsynced.
WAL_FLUSH_SECONDS = 0.05
MAX_BATCH = 64  # deliveries per transaction at most: bounds one commit's latency

@dataclass(eq=False)
class _Slot:
    record: DeliveryRecord
    done: bool = False
    job_id: int | None = None
    error: BaseException | None = None


class Intake:
    """Records relevant deliveries and their jobs, grouping concurrent ones per commit."""

    def __init__(
        self, engine: Engine, *, max_batch: int = MAX_BATCH, durability: str = POWER_CUT,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """`on_batch` hears the size of every committed batch (the worker's metrics); the
        store imports nothing above it."""
        if durability not in (POWER_CUT, PROCESS_CRASH):
            raise ValueError(f"durability must be {POWER_CUT!r} or {PROCESS_CRASH!r}")
        self.engine = engine
        self.max_batch = max_batch
        self.durability = durability
        self.on_batch = on_batch
        database = sqlite_file(engine.url)
        self._flusher: WalFlusher | None = None
        if durability == PROCESS_CRASH and database is not None:
            self._flusher = WalFlusher(database.with_name(database.name + "-wal"),
                                       WAL_FLUSH_SECONDS)
        self._statements = Statements(engine)
        self._file_lock = WriterLock(database)
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
        """Commit the delivery and its job; the job id, or None for a redelivery (the same
        delivery id, or the same body, from the same source).

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
                    results = [self._statements.write(cursor, params_for(batch[0].record))]
                else:
                    cursor.execute("BEGIN" if postgresql else "BEGIN IMMEDIATE")
                    try:
                        results = [self._statements.write(cursor, params_for(slot.record))
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
        if self.on_batch is not None:
            self.on_batch(len(batch))
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
