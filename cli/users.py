"""`pmguard users`: local accounts for the dashboard and the JSON API.

    pmguard users add NAME --role engineer|incident_manager|admin [--password-stdin]
    pmguard users list
    pmguard users disable NAME | enable NAME
    pmguard users reset NAME [--password-stdin]
    pmguard users role NAME --role ROLE
    pmguard users token NAME --name ci        prints the new token once, on stdout

Errors are one line on stderr starting "pmguard: ", exit code 2. Every change lands in
the audit log with the acting operating-system user.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from cli.errors import CliError

ROLE_HELP = "engineer (reads), incident_manager (reviews), admin (also rules and users)"


@contextmanager
def _store() -> Iterator[Any]:
    """A session on the configured database, committed at the end; store errors become
    one-line CLI errors."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from cli.service import load_cli_settings
    from store.db import make_engine, session_factory, session_scope
    from store.migrate import upgrade
    from store.users import UserError

    settings = load_cli_settings()
    # Like `pmguard serve`: the embedded SQLite database sets itself up; PostgreSQL is
    # migrated deliberately with `pmguard db upgrade`.
    if settings.database.startswith("sqlite"):
        upgrade(settings.database)
    engine = make_engine(settings.database)
    try:
        with session_scope(session_factory(engine)) as session:
            yield session
    except UserError as error:
        raise CliError(str(error)) from None
    except (OperationalError, ProgrammingError) as error:
        first = str(getattr(error, "orig", error)).strip().splitlines()[:1]
        raise CliError(
            f"database error: {first[0] if first else type(error).__name__} "
            "(is the schema current? run `pmguard db upgrade`)"
        ) from None
    finally:
        engine.dispose()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in some containers
        return "cli"


def _audit(session: Any, action: str, username: str, **detail: Any) -> None:
    from store.queries import audit

    audit(session, _actor(), action, "user", username, detail=detail or None)


def _read_password(from_stdin: bool, check: Callable[[str], None]) -> str:
    """The new password from stdin's first line or a hidden prompt typed twice; checked
    for strength before any database work."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
    else:
        if not sys.stdin.isatty():
            raise CliError("no terminal to ask for the password on: use --password-stdin")
        password = click.prompt(
            "Password", hide_input=True, confirmation_prompt="Repeat the password", err=True
        )
    try:
        check(password)
    except ValueError as error:
        raise CliError(str(error)) from None
    return password


def _role(role: str) -> str:
    from store.users import BadRole, check_role

    try:
        return check_role(role)
    except BadRole as error:
        raise CliError(str(error)) from None


def _username(name: str) -> str:
    from store.users import BadName, normalise_username

    try:
        return normalise_username(name)
    except BadName as error:
        raise CliError(str(error)) from None


password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)


@click.group()
def users() -> None:
    """Manage the accounts that sign in to the dashboard and call the API."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, metavar="ROLE", help=ROLE_HELP)
@password_stdin
def add(name: str, role: str, password_stdin: bool) -> None:
    """Add a user with a password (at least 12 characters, not a common one)."""
    from store import users as store_users

    username = _username(name)
    role = _role(role)
    with _store() as session:
        # Refuse a duplicate before asking for a password nobody will use.
        if store_users.get_user(session, username) is not None:
            raise CliError(f"user {username!r} already exists")
    password = _read_password(
        password_stdin, lambda p: store_users.check_password(p, username)
    )
    with _store() as session:
        store_users.create_user(session, username, password, role)
        _audit(session, "user.add", username, role=role)
    click.echo(f"pmguard: added {username} ({role})")


@users.command("list")
def list_() -> None:
    """List users: role, status, last sign-in, failed sign-ins since the last success."""
    from store import users as store_users

    with _store() as session:
        rows = [
            (
                user.username,
                user.role,
                "disabled" if user.disabled else "active",
                user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never",
                str(user.failed_logins or 0),
                str(sum(1 for t in user.tokens if not t.revoked)),
            )
            for user in store_users.list_users(session)
        ]
    if not rows:
        click.echo("pmguard: no users; add one with `pmguard users add NAME --role admin`")
        return
    header = ("USERNAME", "ROLE", "STATUS", "LAST SIGN-IN", "FAILED", "TOKENS")
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _set_disabled(name: str, disabled: bool) -> None:
    from store import users as store_users

    with _store() as session:
        user = store_users.set_disabled(session, name, disabled)
        _audit(session, "user.disable" if disabled else "user.enable", user.username)
    click.echo(f"pmguard: {'disabled' if disabled else 'enabled'} {user.username}")


@users.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Stop a user signing in; their sessions and API tokens stop working at once."""
    _set_disabled(name, True)


@users.command("enable")
@click.argument("name")
def enable(name: str) -> None:
    """Let a disabled user sign in again."""
    _set_disabled(name, False)


@users.command("reset")
@click.argument("name")
@password_stdin
def reset(name: str, password_stdin: bool) -> None:
    """Set a new password; the user's signed-in sessions end."""
    from store import users as store_users

    with _store() as session:
        username = store_users.require_user(session, name).username
    password = _read_password(
        password_stdin, lambda p: store_users.check_password(p, username)
    )
    with _store() as session:
        store_users.set_password(session, username, password)
        _audit(session, "user.reset", username)
    click.echo(f"pmguard: new password set for {username}")


@users.command("role")
@click.argument("name")
@click.option("--role", required=True, metavar="ROLE", help=ROLE_HELP)
def role_(name: str, role: str) -> None:
    """Change a user's role."""
    from store import users as store_users

    role = _role(role)
    with _store() as session:
        user = store_users.require_user(session, name)
        before = user.role
        store_users.set_role(session, user.username, role)
        _audit(session, "user.role", user.username, before=before, after=role)
    click.echo(f"pmguard: {user.username} is now {role}")


@users.command("token")
@click.argument("name")
@click.option("--name", "token_name", required=True, metavar="LABEL",
              help="What the token is for, e.g. ci; unique among the user's live tokens.")
def token(name: str, token_name: str) -> None:
    """Create an API token for a user and print it once on standard output."""
    from store import users as store_users

    with _store() as session:
        row, raw = store_users.create_token(session, name, token_name)
        username = row.user.username
        session.flush()
        _audit(session, "token.create", username, token=row.name, token_id=row.id)
    click.echo(raw)
    click.echo(
        f"pmguard: token {token_name!r} for {username}: shown only this once, store it now",
        err=True,
    )


def register(group: click.Group) -> None:
    group.add_command(users)
