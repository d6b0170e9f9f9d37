"""Throw-away PostgreSQL databases for test suites (store, web, end-to-end).

Kept free of pytest so any suite can build its own fixture on it; the suite decides
whether an unreachable server means skip or fail (fail when `CI` is set).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from store.db import DatabaseUnavailable, make_engine, normalise_url, ping

# The server's maintenance database: where CREATE/DROP DATABASE are issued from.
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ADMIN_URL_VARIABLE = "PMGUARD_TEST_POSTGRES_URL"


def admin_url() -> str:
    """The maintenance database URL, from PMGUARD_TEST_POSTGRES_URL or the local default."""
    return os.environ.get(ADMIN_URL_VARIABLE) or DEFAULT_ADMIN_URL


def unreachable_reason(url: str | None = None) -> str | None:
    """Why the PostgreSQL server cannot be used for tests, or None when it can."""
    url = url or admin_url()
    engine = make_engine(url, connect_args={"connect_timeout": 2})
    try:
        ping(engine)
    except DatabaseUnavailable as error:
        return f"PostgreSQL at {normalise_url(url).render_as_string()} is unreachable: {error}"
    finally:
        engine.dispose()
    return None


@contextmanager
def temporary_database(url: str | None = None, prefix: str = "pmguard_test") -> Iterator[str]:
    """Create an empty database named `<prefix>_<random>` and yield its URL; drop it after.

    Raises DatabaseUnavailable when the server cannot be reached.
    """
    server = normalise_url(url or admin_url())
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    try:
        ping(admin)
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                # FORCE: a test that failed may have left a pooled connection open.
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
