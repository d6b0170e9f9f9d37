"""`pmguard users` through real subprocesses, the users store, and migration 0002.

The CLI runs as `python -m cli users ...` with PMGUARD_DATA_DIR in a temporary folder,
so each test gets its own SQLite database (the CLI migrates the embedded database itself,
like `pmguard serve`). Migration 0002 runs on SQLite and on PostgreSQL (skipped when the
server is unreachable, failing instead when CI is set).
"""

from __future__ import annotations

import fcntl
import os
import pty
import select as io_select
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import argon2
import pytest
from sqlalchemy import Engine, inspect, select, text

from store import users as store_users
from store.db import make_engine, session_factory, session_scope
from store.migrate import current, downgrade, head, upgrade
from store.models import ApiToken, AuditEntry, Base, User
from store.types import utcnow

CMD = [sys.executable, "-m", "cli", "users"]
PASSWORD = "correct horse battery"


# --- the CLI ----------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "pmguard.yml").write_text("{}\n")  # no developer's config leaks in
    return tmp_path


def cli_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMGUARD_")}
    env.update(PMGUARD_DATA_DIR=str(data_dir), PMGUARD_CONFIG=str(data_dir / "pmguard.yml"))
    return env


def users(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CMD, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        cwd=data_dir,
        env=cli_env(data_dir),
        timeout=60,
    )


def stored(data_dir: Path) -> Iterator:
    engine = make_engine(f"sqlite:///{data_dir / 'pmguard.db'}")
    try:
        with session_scope(session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pmguard: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_add_list_disable_enable_reset_role(data_dir: Path) -> None:
    r = users(data_dir, "list")
    assert r.returncode == 0 and "pmguard users add" in r.stdout  # none yet: how to add one

    r = users(data_dir, "add", "Ana", "--role", "incident_manager", "--password-stdin",
              stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "pmguard: added ana (incident_manager)"

    r = users(data_dir, "list")
    assert r.returncode == 0
    header, row = r.stdout.strip().splitlines()
    assert header.split()[:3] == ["USERNAME", "ROLE", "STATUS"]
    assert row.split()[:3] == ["ana", "incident_manager", "active"]

    assert users(data_dir, "disable", "ana").stdout.strip() == "pmguard: disabled ana"
    assert "disabled" in users(data_dir, "list").stdout
    assert users(data_dir, "enable", "ANA").stdout.strip() == "pmguard: enabled ana"

    r = users(data_dir, "reset", "ana", "--password-stdin", stdin="a new long passphrase\r\n")
    assert r.returncode == 0, r.stderr
    r = users(data_dir, "role", "ana", "--role", "admin")
    assert r.returncode == 0 and "admin" in r.stdout

    for session in stored(data_dir):
        user = store_users.get_user(session, "ana")
        assert user.role == "admin" and not user.disabled
        assert store_users.verify_password(user.password_hash, "a new long passphrase")
        assert not store_users.verify_password(user.password_hash, PASSWORD)
        assert user.password_hash.startswith("$argon2id$")
        actions = [e.action for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        assert actions == ["user.add", "user.disable", "user.enable", "user.reset", "user.role"]


def test_token_is_printed_once_and_only_its_hash_is_kept(data_dir: Path) -> None:
    users(data_dir, "add", "ci-bot", "--role", "engineer", "--password-stdin",
          stdin=PASSWORD + "\n")
    r = users(data_dir, "token", "ci-bot", "--name", "ci")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("pmg_") and len(token) > 40 and "\n" not in token
    assert "shown only this once" in r.stderr
    for session in stored(data_dir):
        row = session.scalar(select(ApiToken))
        assert row.name == "ci" and row.token_hash == store_users.token_hash(token)
        user, _ = store_users.user_for_token(session, token)
        assert user.username == "ci-bot"
    one_line_error(users(data_dir, "token", "ci-bot", "--name", "ci"), "already has a token")


ERRORS = [
    # (arguments, standard input, words the one-line message must contain)
    (("add", "ana", "--role", "boss", "--password-stdin"), PASSWORD, ("unknown role", "admin")),
    (("add", "ana", "--role", "admin", "--password-stdin"), "too short", ("at least 12",)),
    (("add", "anna", "--role", "admin", "--password-stdin"), "anna's password!", ("username",)),
    (("add", "bad name!", "--role", "admin", "--password-stdin"), PASSWORD, ("username",)),
    (("add", "ana", "--role", "admin"), "", ("--password-stdin",)),  # no terminal to prompt on
    (("add", "KIM", "--role", "admin", "--password-stdin"), PASSWORD, ("already exists",)),
    (("reset", "kim", "--password-stdin"), "short", ("at least 12",)),
    # Every command finds its user the same way (store.users.require_user).
    (("disable", "nobody"), "", ("no user 'nobody'",)),
    (("token", "nobody", "--name", "ci"), "", ("no user",)),
    (("token", "kim", "--name", "<ci>"), "", ("invalid token name",)),
    (("role", "kim", "--role", "root"), "", ("unknown role",)),
]


def test_errors_are_one_line_with_exit_2(data_dir: Path) -> None:
    users(data_dir, "add", "kim", "--role", "engineer", "--password-stdin", stdin=PASSWORD + "\n")

    def attempt(case: tuple) -> None:
        args, stdin, words = case
        one_line_error(users(data_dir, *args, stdin=stdin + "\n" if stdin else ""), *words)

    # Each run is a fresh Python process; two at a time keeps this file quick.
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(attempt, ERRORS))
    for session in stored(data_dir):  # nothing was changed by any refused command
        assert [(u.username, u.role) for u in store_users.list_users(session)] == [
            ("kim", "engineer")
        ]
        assert store_users.verify_password(store_users.get_user(session, "kim").password_hash,
                                           PASSWORD)


def _make_controlling_tty() -> None:
    # Runs in the child after setsid(): getpass reads /dev/tty, the controlling terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _read_until(fd: int, text: str, timeout: float = 20.0) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        ready, _, _ = io_select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"timed out waiting for {text!r}; saw {seen!r}")
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk.decode(errors="replace")
    return seen


def test_password_prompt_is_hidden_and_asked_twice(data_dir: Path) -> None:
    parent, child = pty.openpty()
    process = subprocess.Popen(
        [*CMD, "add", "kim", "--role", "engineer"],
        stdin=child, stdout=child, stderr=child, cwd=data_dir, env=cli_env(data_dir),
        start_new_session=True, preexec_fn=_make_controlling_tty,  # noqa: PLW1509
    )
    os.close(child)
    try:
        _read_until(parent, "Password:")
        os.write(parent, b"a typed long passphrase\n")
        _read_until(parent, "Repeat the password:")
        os.write(parent, b"a typed long passphrase\n")
        output = _read_until(parent, "added kim")
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        os.close(parent)
    assert "a typed long passphrase" not in output  # never echoed
    for session in stored(data_dir):
        user = store_users.get_user(session, "kim")
        assert store_users.verify_password(user.password_hash, "a typed long passphrase")


def test_a_cli_user_and_token_work_in_the_web_app(data_dir: Path) -> None:
    from app import create_app
    from settings import load_settings

    users(data_dir, "add", "ana", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    token = users(data_dir, "token", "ana", "--name", "ci").stdout.strip()
    settings = load_settings(env=cli_env(data_dir))
    app = create_app(settings)
    try:
        client = app.test_client()
        html = client.get("/login").get_data(as_text=True)
        csrf = html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        r = client.post("/login", data={"username": "ana", "password": PASSWORD,
                                        "csrf_token": csrf})
        assert r.status_code == 302
        page = client.get("/account").get_data(as_text=True)
        assert "ci" in page and token[:10] in page
        r = client.get("/api/nothing-here", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 404  # authenticated: the route just does not exist (yet)
    finally:
        app.extensions["pmguard"].engine.dispose()


# --- the store --------------------------------------------------------------------------


@pytest.fixture
def sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(
        store_users, "PASSWORD_HASHER",
        argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    Base.metadata.create_all(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest.mark.parametrize(("password", "reason"), [
    ("aaaaaaaaaaaa", "too few different characters"),
    ("abababababababab", "too few different characters"),
    ("123412341234", "too few different characters"),
    ("password1234", "too common"),
    ("P@ssw0rd2024!", "too common"),
    ("Qwertyuiop123", "too common"),
    ("123456789012", "too common"),
    ("incidentmanager", "contains the username"),
])
def test_weak_passwords_are_refused(password: str, reason: str) -> None:
    with pytest.raises(store_users.WeakPassword, match=reason):
        store_users.check_password(password, "incidentmanager")


@pytest.mark.parametrize("password", [
    PASSWORD, "Tr0ub4dor&3 horse", "9f8e7d6c5b4a", "pmguard rocks 2026", "passwords are long",
])
def test_reasonable_passwords_are_accepted(password: str) -> None:
    store_users.check_password(password, "ana")


def test_store_users_rules(sessions) -> None:
    with session_scope(sessions) as db:
        store_users.create_user(db, "Ana", PASSWORD, "engineer")
    with session_scope(sessions) as db, pytest.raises(store_users.DuplicateUser):
        store_users.create_user(db, "ANA", PASSWORD, "admin")
    with session_scope(sessions) as db:
        with pytest.raises(store_users.BadRole):
            store_users.create_user(db, "bo", PASSWORD, "root")
        with pytest.raises(store_users.WeakPassword):
            store_users.create_user(db, "bo", "x" * 11, "engineer")
        with pytest.raises(store_users.WeakPassword):
            store_users.create_user(db, "bo", " " * 20, "engineer")
        with pytest.raises(store_users.BadName):
            store_users.create_user(db, "", PASSWORD, "engineer")
        with pytest.raises(ValueError, match="role must be one of"):
            User(username="x", password_hash="h", role="root")
        assert store_users.count_users(db) == 1
        assert store_users.authenticate(db, "ana", PASSWORD).ok
        assert not store_users.authenticate(db, "ana", "wrong").ok
        assert not store_users.authenticate(db, "nobody", PASSWORD).ok
        store_users.set_disabled(db, "ana", True)
        result = store_users.authenticate(db, "ana", PASSWORD)
        assert not result.ok and result.disabled and result.user is None


def test_role_order() -> None:
    assert store_users.role_at_least("admin", "engineer")
    assert store_users.role_at_least("incident_manager", "incident_manager")
    assert not store_users.role_at_least("engineer", "incident_manager")
    assert not store_users.role_at_least("nobody", "engineer")


def test_token_last_used_is_written_at_most_once_a_minute(sessions) -> None:
    from datetime import UTC, datetime, timedelta

    with session_scope(sessions) as db:
        store_users.create_user(db, "ana", PASSWORD, "engineer")
        _, raw = store_users.create_token(db, "ana", "ci")
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with session_scope(sessions) as db:
        _, token = store_users.user_for_token(db, raw, now=t0)
        assert token.last_used_at == t0
        _, token = store_users.user_for_token(db, raw, now=t0 + timedelta(seconds=30))
        assert token.last_used_at == t0
        _, token = store_users.user_for_token(db, raw, now=t0 + timedelta(minutes=2))
        assert token.last_used_at == t0 + timedelta(minutes=2)
        # Revoked tokens and a revoked token's name being reused.
        user = store_users.require_user(db, "ana")
        store_users.revoke_token(db, user.id, token.id)
        assert store_users.user_for_token(db, raw) is None
        _, again = store_users.create_token(db, "ana", "ci")
        assert store_users.user_for_token(db, again) is not None


# --- migration 0002 ---------------------------------------------------------------------


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def test_0002_upgrades_a_0001_database_keeping_its_data_and_goes_back(empty_db: str) -> None:
    upgrade(empty_db, "0001")
    engine = make_engine(empty_db)
    try:
        with engine.begin() as connection:
            # The table as 0001 made it, not as the models are now (0006 adds a column).
            connection.execute(text(
                "INSERT INTO deliveries (source, delivery_id, event, received_at, outcome)"
                " VALUES ('github', 'kept', 'issues', :now, 'enqueued')"), {"now": utcnow()})
        assert "users" not in _tables(engine)

        upgrade(empty_db, "0002")
        assert current(empty_db) == "0002"
        assert {"users", "api_tokens"} <= _tables(engine)
        with engine.begin() as connection:
            kept = "SELECT count(*) FROM deliveries WHERE delivery_id = 'kept'"
            assert connection.scalar(text(kept)) == 1
            # The tables as 0002 made them, not as the models are now (0005 adds a column).
            connection.execute(text(
                "INSERT INTO users (username, password_hash, role, disabled, created_at,"
                " failed_logins) VALUES ('ana', 'h', 'admin', false, :now, 0)"), {"now": utcnow()})
            connection.execute(text(
                "INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_at)"
                " SELECT id, 'ci', :hash, 'pmg_', created_at FROM users"), {"hash": "0" * 64})
        with engine.connect() as connection:
            uniques = inspect(connection).get_unique_constraints("users")
            assert [u["column_names"] for u in uniques] == [["username"]]

        # Later revisions keep the user; 0005 starts its session generation at 0.
        upgrade(empty_db)
        with session_scope(session_factory(engine)) as session:
            user = store_users.require_user(session, "ana")
            assert user.session_generation == 0 and [t.name for t in user.tokens] == ["ci"]

        engine.dispose()
        downgrade(empty_db, "0001")
        assert current(empty_db) == "0001"
        assert not {"users", "api_tokens"} & _tables(engine)
        upgrade(empty_db)
        assert current(empty_db) == head()
    finally:
        engine.dispose()
