"""Schema migrations through Alembic's Python API, for `pmguard db upgrade` and `serve`.

The script location is this package's directory, so migrations run the same from any
working directory and from an installed wheel.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from store.db import make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# Any fixed number: the key of the PostgreSQL advisory lock that serialises upgrades.
_UPGRADE_LOCK = 0x706D6775  # "pmgu"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's config for the packaged scripts, optionally bound to `connection`."""
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision the code ships."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None, "store/migrations/versions has no revisions"
    return revision


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision`; a no-op when it is already there."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            _lock(connection)
            command.upgrade(alembic_config(connection), revision)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Take the database at `url` back to `revision` ("base" removes every table)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            _lock(connection)
            command.downgrade(alembic_config(connection), revision)
    finally:
        engine.dispose()


def current(url: str) -> str | None:
    """The revision the database at `url` is at; None for a database never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _lock(connection: Connection) -> None:
    # Several processes (web workers, queue workers) may start at once and all upgrade:
    # the second must wait and then find nothing to do, not race the first. SQLite needs
    # nothing here because store.db begins every transaction with BEGIN IMMEDIATE.
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK})
