"""`pmguard db upgrade`, `reconcile`, `jobs --failed` and `jobs retry` as real processes
against a fake GitHub: what an operator types when webhooks were lost or a tracker was
down."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from store import queries
from store.db import make_engine, session_factory, session_scope
from tests.fakes.github import FakeGitHub, fake_github  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
REPO = "acme/ops"


def run(args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, text=True,
        capture_output=True, timeout=timeout,
    )


@pytest.fixture
def cli_env(tmp_path: Path, fake_github: FakeGitHub) -> dict:  # noqa: F811
    fake_github.add_repo(REPO)
    return {
        **os.environ,
        "PMGUARD_DATA_DIR": str(tmp_path),
        "PMGUARD_GITHUB_API_URL": fake_github.url,
        "PMGUARD_GITHUB_TOKEN": fake_github.token,
        "PMGUARD_GITHUB_WEBHOOK_SECRET": "s",
        "PMGUARD_GITHUB_BOT_LOGIN": fake_github.user,
    }


def sessions(tmp_path: Path):
    return session_factory(make_engine(f"sqlite:///{tmp_path / 'pmguard.db'}"))


def test_db_upgrade_reports_the_revision(cli_env: dict) -> None:
    result = run(["db", "upgrade"], cli_env)
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout


def test_bad_settings_are_one_line_errors(cli_env: dict) -> None:
    result = run(["db", "upgrade"], {**cli_env, "PMGUARD_DATABASE_URL": "not-a-url"})
    assert result.returncode == 2
    assert result.stderr.startswith("pmguard: setting 'database_url'")
    assert "Traceback" not in result.stderr


def test_reconcile_queues_missed_incidents_and_a_worker_checks_them(
    tmp_path: Path, cli_env: dict, fake_github: FakeGitHub  # noqa: F811
) -> None:
    number = fake_github.add_issue(REPO, "API down", "", labels=["incident"])
    fake_github.close_issue(REPO, number)
    assert run(["db", "upgrade"], cli_env).returncode == 0
    result = run(["reconcile", "--since", "7d"], cli_env)
    assert result.returncode == 0, result.stderr
    assert f"{REPO}#{number}" in result.stdout and "1 incident(s) queued" in result.stdout
    with session_scope(sessions(tmp_path)) as session:
        [job] = queries.recent_jobs(session)
        assert job.status == "queued" and job.payload["reason"] == "reconcile"
    bad = run(["reconcile", "--since", "sometime"], cli_env)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_failed_jobs_are_listed_and_can_be_retried(tmp_path: Path, cli_env: dict) -> None:
    assert run(["db", "upgrade"], cli_env).returncode == 0
    with session_scope(sessions(tmp_path)) as session:
        job = queries.create_job(session, "check", "github:x:acme/ops#1", {}, max_attempts=1)
        session.flush()
        queries.start_job(session, job.id)
        queries.fail_job(session, job.id, "GitHub fetch_incident failed: 502", None)
        job_id = job.id
    listed = run(["jobs", "--failed"], cli_env)
    assert listed.returncode == 0 and f"{job_id}\tfailed\tcheck" in listed.stdout
    assert "502" in listed.stdout
    retried = run(["jobs", "retry", str(job_id)], cli_env)
    assert retried.returncode == 0, retried.stderr
    with session_scope(sessions(tmp_path)) as session:
        assert queries.failed_jobs(session) == []
    missing = run(["jobs", "retry", "999"], cli_env)
    assert missing.returncode == 2 and "no job 999" in missing.stderr
