"""A worker killed (SIGKILL) in the middle of a job: after a restart the job runs again
and the ticket ends with exactly one comment. Real processes, a real fake GitHub."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from connector.signatures import sign_github
from store import queries
from store.db import make_engine, session_factory, session_scope
from tests.fakes.github import FakeGitHub, fake_github  # noqa: F401
from tests.service_env import wait_until

ROOT = Path(__file__).resolve().parents[1]
REPO = "acme/ops"


def worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "worker", "--workers", "2"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def test_killed_worker_job_runs_again_with_one_comment(
    tmp_path: Path, fake_github: FakeGitHub  # noqa: F811
) -> None:
    fake_github.add_repo(REPO)
    number = fake_github.add_issue(REPO, "API down", "", labels=["incident"])
    fake_github.close_issue(REPO, number)
    env = {**os.environ, "PMGUARD_DATA_DIR": str(tmp_path),
           "PMGUARD_GITHUB_API_URL": fake_github.url, "PMGUARD_GITHUB_TOKEN": fake_github.token,
           "PMGUARD_GITHUB_WEBHOOK_SECRET": "s", "PMGUARD_GITHUB_BOT_LOGIN": fake_github.user,
           # Only the killed job runs: no scheduled reconcile job beside it.
           "PMGUARD_RECONCILE_EVERY_HOURS": "0"}
    assert subprocess.run([sys.executable, "-m", "cli", "db", "upgrade"], cwd=ROOT, env=env,
                          capture_output=True).returncode == 0

    from app import create_app
    from settings import load_settings

    app = create_app(load_settings(env=env))
    body = json.dumps({"action": "closed", "issue": fake_github.issue(REPO, number),
                       "repository": {"full_name": REPO},
                       "sender": {"login": "ana", "type": "User"}}).encode()
    r = app.test_client().post("/webhooks/github", data=body, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sign_github(b"s", body)})
    assert r.status_code == 202
    time.sleep(0.3)  # let the hand-off thread push the job onto the queue

    # The job stalls on a read (no side effect yet) so the kill lands mid-job.
    fake_github.delay("GET", rf"/repos/{REPO}/issues/{number}/timeline", 30, times=1)
    sessions = session_factory(make_engine(f"sqlite:///{tmp_path / 'pmguard.db'}"))

    def job():
        with session_scope(sessions) as session:
            return queries.recent_jobs(session)[0]

    first = worker(env)
    try:
        wait_until(lambda: job().status == "running", timeout=30, what="the job to start")
        wait_until(lambda: fake_github.calls("GET", rf"/issues/{number}/comments"),
                   timeout=30, what="the worker to be inside the job")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert job().status == "running" and fake_github.comments(REPO, number) == []

    second = worker(env)
    try:
        wait_until(lambda: job().status == "done", timeout=60, what="the job to run again")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    comments = fake_github.comments(REPO, number)
    assert len(comments) == 1 and "No postmortem is linked yet" in comments[0]["body"]
    assert job().attempts == 2
