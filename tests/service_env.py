"""A running service for end-to-end tests: settings, store, queue and worker threads.

Two backends: SQLite + huey on SQLite (the embedded default), and PostgreSQL + Redis (the
scale-out mode, against the servers on this machine). The second is skipped with a reason
where the servers are absent and fails instead when CI is set.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

import pytest

from app import create_app
from connector.signatures import sign_github, sign_jira
from settings import GitHubSettings, JiraSettings, Settings
from store.migrate import upgrade

SECRET = "hook-secret-for-tests"
REDIS_URL = os.environ.get("PMGUARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on right now (for servers run as processes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_unreachable() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:
        return f"Redis at {REDIS_URL} is unreachable: {exc}"
    return None


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


@contextmanager
def backend_urls(backend: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'pmguard.db'}", ""
        return
    from store.testing import temporary_database, unreachable_reason

    reason = unreachable_reason() or redis_unreachable()
    if reason:
        unavailable(reason)
    with temporary_database() as url:
        yield url, REDIS_URL


class ServiceEnv:
    """The web app (Flask test client), the store and huey worker threads."""

    def __init__(self, settings: Settings, queue_name: str) -> None:
        from worker.service import Service

        upgrade(settings.database)
        from worker.jobs import make_huey

        self.huey = make_huey(settings, name=queue_name)
        self.service = Service(settings, huey=self.huey, retry_base_delay=0.05)
        self.app = create_app(settings, service=self.service)
        self.client = self.app.test_client()
        self.consumer = None

    def start_worker(self, workers: int = 2) -> None:
        self.consumer = self.huey.create_consumer(
            workers=workers,
            worker_type="thread",
            periodic=False,
            initial_delay=0.01,
            backoff=1.1,
            max_delay=0.05,
            scheduler_interval=1,
            check_worker_health=False,
        )
        self.consumer.start()

    def stop(self) -> None:
        if self.consumer is not None:
            self.consumer.stop(graceful=True)
        with suppress(Exception):
            self.huey.flush()
        self.service.close()

    # ---- deliveries ----------------------------------------------------------------------

    def github(self, event: str, payload: dict, delivery: str | None = None, **headers):
        body = json.dumps(payload).encode()
        sig = headers.pop("signature", None) or sign_github(SECRET.encode(), body)
        return self.client.post(
            "/webhooks/github",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
                "X-Hub-Signature-256": sig,
                **headers,
            },
        )

    def jira(self, payload: dict, delivery: str | None = None, **headers):
        body = json.dumps(payload).encode()
        sig = headers.pop("signature", None) or sign_jira(SECRET.encode(), body)
        return self.client.post(
            "/webhooks/jira",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Atlassian-Webhook-Identifier": delivery or str(uuid.uuid4()),
                "X-Hub-Signature": sig,
                **headers,
            },
        )


def wait_until(check: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: {last!r}")


def make_settings(
    tmp_path: Path, database_url: str, redis_url: str, *, github_url: str = "",
    github_token: str = "", bot_login: str = "", jira_url: str = "", jira_email: str = "",
    jira_token: str = "", policy: dict | None = None,
) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        secret_key=secrets.token_hex(8),
        policy=policy or {},
        max_attempts=4,
        github=GitHubSettings(
            api_url=github_url or "https://api.github.invalid",
            webhook_secret=SECRET,
            token=github_token,
            bot_login=bot_login,
        ),
        jira=JiraSettings(
            url=jira_url, webhook_secret=SECRET, email=jira_email, token=jira_token,
        ),
    )


@contextmanager
def github_env(backend: str, tmp_path: Path, fake, **overrides) -> Iterator[ServiceEnv]:
    """A service watching the fake GitHub `fake` on `backend` ("sqlite" or
    "postgres-redis"), settings changed by `overrides`; the worker is not started yet, so
    the caller can seed the fake first. Stopped on exit."""
    with backend_urls(backend, tmp_path) as (database_url, redis_url):
        settings = make_settings(
            tmp_path, database_url, redis_url, github_url=fake.url,
            github_token=fake.token, bot_login=fake.user,
        )
        if overrides:
            settings = replace(settings, **overrides)
        env = ServiceEnv(settings, queue_name=f"pmguard-test-{uuid.uuid4().hex[:8]}")
        env.fake = fake
        try:
            yield env
        finally:
            env.stop()
