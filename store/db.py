"""Engines, sessions and the one exception the web layer turns into a 503."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from store.sqlite_files import create_private

# How long a SQLite writer waits for another writer's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 15_000
# Fail a readiness check or a request quickly when PostgreSQL is unreachable rather than
# hanging on the operating system's TCP timeout.
POSTGRES_CONNECT_TIMEOUT_S = 5


class DatabaseUnavailable(Exception):
    """The database cannot be reached or is too busy; the caller should answer 503."""


def normalise_url(url: str | URL) -> URL:
    """Pick the installed driver: bare `postgresql://` (and Heroku-style `postgres://`)
    would otherwise mean psycopg2, which this project does not install."""
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, **options: Any) -> Engine:
    """An engine for `url` set up for this service; `options` go to `create_engine`."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        _create_sqlite_parent(parsed)
        engine = create_engine(parsed, **options)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        options.setdefault("pool_pre_ping", True)
        connect_args = options.setdefault("connect_args", {})
        if "connect_timeout" not in parsed.query:
            connect_args.setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT_S)
    return create_engine(parsed, **options)


def sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL; None for other databases and in-memory SQLite."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") \
            or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def _create_sqlite_parent(url: URL) -> None:
    path = sqlite_file(url)
    if path is not None:
        create_private(path)


SQLITE_SYNCHRONOUS = (os.environ.get("PMGUARD_SQLITE_SYNCHRONOUS") or "FULL").upper()
if SQLITE_SYNCHRONOUS not in ("FULL", "NORMAL"):
    raise ValueError("PMGUARD_SQLITE_SYNCHRONOUS must be FULL or NORMAL")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from Python's sqlite3 module, which would
        # otherwise not BEGIN before SELECTs and SAVEPOINTs: savepoints (used for
        # race-safe inserts) and transactional DDL (migrations) need a real BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers run alongside the single writer.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # synchronous defaults to FULL: a delivery answered 202 must survive a power cut,
        # which WAL's usual NORMAL does not promise (NORMAL still survives a killed
        # process). PMGUARD_SQLITE_SYNCHRONOUS=NORMAL trades the one for throughput.
        if SQLITE_SYNCHRONOUS != "FULL":
            cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        # IMMEDIATE takes the write lock up front. A deferred transaction that reads and
        # then writes fails at once with SQLITE_BUSY (no waiting) when another writer
        # committed in between; taking the lock first makes writers queue on busy_timeout.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: objects returned from a session_scope stay readable after it
    # commits (a web handler renders what it just saved).
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception.

    Driver errors pass through unchanged (a connection failure or SQLite's "database is
    locked" is a `sqlalchemy.exc.OperationalError`); `is_unavailable` tells which of them
    mean "answer 503 and let the sender retry".
    """
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        # The connection may be gone; failing to roll back must not hide the real error.
        with suppress(sa_exc.SQLAlchemyError):
            session.rollback()
        raise
    finally:
        session.close()


def is_unavailable(error: BaseException) -> bool:
    """True for errors that mean the database is down or busy, not that a query is wrong:
    connection failures, lock timeouts (OperationalError) and an exhausted pool."""
    return isinstance(error, sa_exc.OperationalError | sa_exc.TimeoutError | DatabaseUnavailable)


def ping(engine: Engine) -> None:
    """Raise `DatabaseUnavailable` unless the database answers a trivial query."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as error:
        raise DatabaseUnavailable(_describe(error)) from error


def driver_message(error: BaseException) -> str:
    """The first line of the driver's message, without SQLAlchemy's statement and
    parameters: those may carry webhook payload text and have no place in a 503 body or a
    log line."""
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


def _describe(error: Exception) -> str:
    return f"database unavailable: {driver_message(error)}"
