"""A job whose start meets a database outage runs as soon as the database is back, instead of
waiting out the stale-job sweep's ten minutes (security issue, Low 14). A real outage: the
PostgreSQL database refuses connections and its sessions are ended, while the queue (Redis)
stays up."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from check.comment import GITHUB_MARKER
from connector.base import IncidentRef
from store.db import make_engine, session_scope
from store.models import Job
from store.testing import admin_url
from tests.fakes.github import FakeGitHub, fake_github  # noqa: F401
from tests.service_env import ServiceEnv, backend_urls, make_settings, wait_until
from worker.jobs import ref_payload
from worker.service import CHECK

REPO = "acme/ops"


def set_outage(database_url: str, down: bool) -> None:
    name = make_url(database_url).database
    admin = make_engine(admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {not down}'))
            if down:
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = :name AND pid <> pg_backend_pid()"),
                    {"name": name},
                )
    finally:
        admin.dispose()


def test_a_job_that_cannot_start_for_an_outage_runs_when_the_database_returns(
    tmp_path: Path, fake_github: FakeGitHub  # noqa: F811
) -> None:
    with backend_urls("postgres-redis", tmp_path) as (database_url, redis_url):
        settings = make_settings(
            tmp_path, database_url, redis_url, github_url=fake_github.url,
            github_token=fake_github.token, bot_login=fake_github.user,
        )
        env = ServiceEnv(settings, queue_name=f"pmguard-test-{uuid.uuid4().hex[:8]}")
        fake_github.add_repo(REPO)
        number = fake_github.add_issue(REPO, "API down", "", labels=["incident"])
        fake_github.close_issue(REPO, number)
        ref = IncidentRef("github", fake_github.url, REPO, str(number))
        with session_scope(env.service.sessions) as session:
            job_id = env.service.create_job(session, CHECK, {**ref_payload(ref),
                                                             "reason": "closed"})
        try:
            set_outage(database_url, down=True)
            env.start_worker()
            env.service.jobs.enqueue(job_id)
            time.sleep(1.5)  # the worker takes the job and cannot start it
            assert fake_github.comments(REPO, number) == []
            set_outage(database_url, down=False)
            wait_until(
                lambda: [c for c in fake_github.comments(REPO, number)
                         if GITHUB_MARKER in c["body"]],
                timeout=20, what="the comment once the database is back",
            )
            wait_until(lambda: _status(env, job_id) == "done", what="the job to finish")
            with session_scope(env.service.sessions) as session:
                assert session.get(Job, job_id).attempts == 1  # the outage spent none
        finally:
            set_outage(database_url, down=False)
            env.stop()


def _status(env: ServiceEnv, job_id: int) -> str:
    with session_scope(env.service.sessions) as session:
        return session.get(Job, job_id).status
