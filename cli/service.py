"""`pmguard serve`, `worker`, `db upgrade`, `reconcile` and `jobs`: the service commands.

Kept apart from cli/main.py's linting so `pmguard lint` never imports Flask, SQLAlchemy or huey.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from cli.errors import CliError

if TYPE_CHECKING:
    from settings import Settings


def load_cli_settings() -> Settings:
    """The settings, or a one-line CLI error saying what is wrong with them."""
    from settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise CliError(str(exc)) from None


def _service(settings):
    from worker.service import Service

    return Service(settings)


def _upgrade(settings) -> None:
    from store.migrate import upgrade

    upgrade(settings.database)


def _logging(settings) -> None:
    from worker.logs import configure

    configure(settings.log_format)


# `pmguard serve`'s web server (waitress). It reads each request in full without a
# thread, so slow or idle clients cost a socket each, not a thread; WEB_THREADS run the
# app. Connections past CONNECTION_LIMIT wait in the OS backlog; one that sends nothing
# for CHANNEL_TIMEOUT seconds is closed.
WEB_THREADS = 8
CONNECTION_LIMIT = 200
CHANNEL_TIMEOUT = 30


def _web_server(app, settings):
    from waitress import create_server

    return create_server(
        app,
        host=settings.host,
        port=settings.port,
        threads=WEB_THREADS,
        connection_limit=CONNECTION_LIMIT,
        channel_timeout=CHANNEL_TIMEOUT,
        # Refused before it is read; the app's own 413 covers chunked bodies too.
        max_request_body_size=settings.max_body_bytes,
        # X-Forwarded-* are the app's to judge (trusted_proxies, ProxyFix); waitress would
        # otherwise drop them before the app sees them.
        clear_untrusted_proxy_headers=not settings.trusted_proxies,
        ident="pmguard",
    )


def _consumer(service, workers: int):
    # huey on SQLite polls; its default back-off lets an idle worker sleep up to 10 s,
    # which would be the latency of the first check after a quiet spell.
    return service.huey.create_consumer(
        workers=workers,
        worker_type="thread",
        periodic=True,
        check_worker_health=True,
        initial_delay=0.05,
        backoff=1.2,
        max_delay=0.5,
    )


@click.command(short_help="Run the web app and an in-process worker.")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@click.option("--workers", type=int, default=None, help="Worker threads (default 2).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Web app plus worker threads on the embedded defaults (SQLite, huey on SQLite)."""
    from dataclasses import replace

    from app import create_app

    settings = load_cli_settings()
    settings = replace(settings, host=host or settings.host, port=port or settings.port)
    _logging(settings)
    demo = None
    if not settings.github.configured and not any(j.configured for j in settings.jiras):
        # Nothing to watch: run the demo against a sandbox tracker instead of idling.
        from sandbox import demo as sandbox

        demo = sandbox.start(settings)
        settings = demo.settings
    if settings.database.startswith("sqlite"):
        _upgrade(settings)
    service = _service(settings)
    service.jobs.recover()
    consumer = _consumer(service, workers or settings.workers)
    app = create_app(settings, service=service)
    server = _web_server(app, settings)
    port = getattr(server, "effective_port", settings.port)
    # start() runs the worker threads without blocking; it must be called from the main
    # thread (it installs huey's signal handlers, which ours then replace).
    consumer.start()

    def stop(*_args) -> None:
        # waitress's run() stops on SystemExit raised in its loop (the main thread, where
        # signal handlers run) and closes the server; a second signal must not cut the
        # shutdown below short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"pmguard: serving on http://{settings.host}:{port}")
    for name, tracker in (("GitHub", settings.github), ("Jira", settings.jira)):
        if name == "Jira" and (demo is not None or any(j.webhook_secret for j in settings.jiras)):
            continue
        if not tracker.webhook_secret:
            click.echo(f"pmguard: no {name} webhook secret set: its deliveries get 401 "
                       f"(PMGUARD_{name.upper()}_WEBHOOK_SECRET)")
    if demo is not None:
        _run_demo(demo, service, f"http://{settings.host}:{port}")
    try:
        server.run()
    finally:
        consumer.stop(graceful=True)
        if demo is not None:
            demo.fake.stop()


def _run_demo(demo, service, base_url: str) -> None:
    from sandbox import demo as sandbox

    sandbox.create_user(demo, service.sessions)

    def deliver() -> None:
        sandbox.close_incidents(demo, base_url)

    threading.Thread(target=deliver, name="pmguard-demo", daemon=True).start()
    click.echo("pmguard: no tracker configured, so this is the demo: a sandbox GitHub at "
               f"{demo.fake.url} with three incidents, closed through signed webhooks now.")
    click.echo(f"pmguard: dashboard {base_url}/incidents  sign in as "
               f"'{sandbox.USER}' with password '{demo.password}'")
    click.echo("pmguard: a real deployment is the same command with tracker credentials "
               "in pmguard.yml or PMGUARD_* variables (see README).")


@click.command(short_help="Run queue workers only.")
@click.option("--workers", type=int, default=None, help="Worker threads (default 2).")
def worker(workers: int | None) -> None:
    """Workers alone, for deployments where gunicorn serves the web app."""
    settings = load_cli_settings()
    _logging(settings)
    service = _service(settings)
    service.warm_up()
    service.jobs.recover()
    _consumer(service, workers or settings.workers).run()


@click.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to the newest revision."""
    settings = load_cli_settings()
    _upgrade(settings)
    from store.migrate import current

    click.echo(f"pmguard: database at revision {current(settings.database)}")


def parse_since(text: str) -> timedelta:
    m = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if not m:
        raise CliError(f"--since {text!r}: use a number and a unit, like 7d, 12h or 30m")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    return timedelta(**{unit[m.group(2)]: int(m.group(1))})


@click.command(short_help="Check recently closed incidents the service missed.")
@click.option("--since", "since_text", default="7d", show_default=True)
def reconcile(since_text: str) -> None:
    """List recently closed incidents through the trackers' APIs and queue a check for each
    one without a check since it closed (GitHub does not redeliver failed webhooks)."""
    settings = load_cli_settings()
    _logging(settings)
    service = _service(settings)
    since = datetime.now(UTC) - parse_since(since_text)
    targets = [("github", site) for site in service.trackers.sites("github")] + [
        ("jira", site) for site in service.trackers.sites("jira")
    ]
    if not targets:
        raise CliError("no tracker credentials configured")
    total = 0
    for name, site in targets:
        for project in service.projects(name, site):
            for incident_id in service.reconcile_project(name, project, since, site):
                click.echo(f"queued {incident_id}")
                total += 1
    click.echo(f"pmguard: {total} incident(s) queued for a check")


@click.group(invoke_without_command=True)
@click.option("--failed", is_flag=True, help="Only jobs that ran out of retries.")
@click.pass_context
def jobs(ctx: click.Context, failed: bool) -> None:
    """List jobs (most recent first)."""
    if ctx.invoked_subcommand:
        return
    from store import queries
    from store.db import make_engine, session_factory, session_scope

    settings = load_cli_settings()
    sessions = session_factory(make_engine(settings.database))
    with session_scope(sessions) as session:
        rows = queries.failed_jobs(session) if failed else queries.recent_jobs(session)
        for job in rows:
            click.echo(
                f"{job.id}\t{job.status}\t{job.kind}\t{job.incident_id or '-'}\t"
                f"attempts={job.attempts}\t{(job.last_error or '')[:120]}"
            )
        if not rows:
            click.echo("pmguard: no failed jobs" if failed else "pmguard: no jobs")


@jobs.command("retry")
@click.argument("job_ids", nargs=-1, type=int, required=True)
def jobs_retry(job_ids: tuple[int, ...]) -> None:
    """Queue failed jobs again with a fresh retry budget."""
    from store import queries
    from store.db import session_scope

    settings = load_cli_settings()
    service = _service(settings)
    for job_id in job_ids:
        try:
            with session_scope(service.sessions) as session:
                queries.retry_job(session, job_id)
        except LookupError:
            raise CliError(f"no job {job_id}") from None
        except queries.JobStateError as exc:
            raise CliError(f"job {job_id}: {exc}") from None
        service.enqueue(job_id)
        click.echo(f"pmguard: job {job_id} queued again")


def register(group: click.Group) -> None:
    for command in (serve, worker, db, reconcile, jobs):
        group.add_command(command)


# huey logs every task at INFO; the service logs what matters about each job itself.
logging.getLogger("huey").setLevel(logging.WARNING)
