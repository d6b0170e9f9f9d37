"""Alembic migrations on an empty SQLite file and an empty PostgreSQL database: they build
exactly the models' schema, run twice without harm, and never drift from the models."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from store import queries as q
from store.db import make_engine, session_factory, session_scope
from store.migrate import MIGRATIONS, alembic_config, current, downgrade, head, upgrade
from store.models import Base

VERSION_TABLE = "alembic_version"


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_exactly_the_models_tables(
    empty_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The packaged script location is found from any working directory.
    monkeypatch.chdir(tmp_path)
    assert current(empty_db) is None
    upgrade(empty_db)
    assert tables(empty_db) == set(Base.metadata.tables) | {VERSION_TABLE}
    assert current(empty_db) == head()


def test_second_upgrade_is_a_no_op(empty_db: str) -> None:
    upgrade(empty_db)
    engine = make_engine(empty_db)
    try:
        with session_scope(session_factory(engine)) as session:
            q.record_delivery(session, "github", "kept", "issues", "enqueued")
        upgrade(empty_db)
        assert current(empty_db) == head()
        with session_scope(session_factory(engine)) as session:
            assert not q.record_delivery(session, "github", "kept", "issues", "enqueued")
    finally:
        engine.dispose()


def test_models_and_migrations_do_not_drift(empty_db: str) -> None:
    upgrade(empty_db)
    engine = make_engine(empty_db)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(empty_db: str) -> None:
    upgrade(empty_db)
    downgrade(empty_db, "base")
    assert tables(empty_db) == {VERSION_TABLE}
    assert current(empty_db) is None
    upgrade(empty_db)
    assert current(empty_db) == head()


def test_every_revision_steps_down_one_and_up_again(empty_db: str) -> None:
    # Down to base and up again never runs a downgrade against a constraint an upgrade
    # renamed; stepping one revision at a time does.
    script = ScriptDirectory.from_config(alembic_config(empty_db))
    upgrade(empty_db)
    for revision in script.walk_revisions():
        if revision.down_revision is None:
            continue
        downgrade(empty_db, str(revision.down_revision))
        upgrade(empty_db)
    assert current(empty_db) == head()


def test_the_verdict_column_admits_unchecked_after_upgrade(empty_db: str) -> None:
    upgrade(empty_db)
    engine = make_engine(empty_db)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO incidents (id, tracker, site, project, key, title, url, state, "
                "verdict, created_at, updated_at) VALUES ('i', 'github', 's', 'p', '1', 't', "
                "'u', 'closed', 'unchecked', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        with pytest.raises(Exception, match="(?i)check"), engine.begin() as connection:
            connection.exec_driver_sql("UPDATE incidents SET verdict = 'bogus'")
    finally:
        engine.dispose()


def test_concurrent_upgrades_wait_for_each_other(empty_db: str) -> None:
    # Several processes starting at once (web workers, queue workers) may all upgrade.
    upgrade(empty_db, "base")  # creates the SQLite file, so every thread opens the same one
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            upgrade(empty_db)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert current(empty_db) == head()


def test_revisions_form_one_line_with_packaged_files() -> None:
    assert (MIGRATIONS / "alembic.ini").is_file()
    assert (MIGRATIONS / "script.py.mako").is_file()
    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_heads() == [head()]
    assert [r.revision for r in scripts.walk_revisions()][-1] == "0001"
