"""Scale-out on PostgreSQL + Redis: jobs per second with one `pmguard worker` process and
with two, in the same run, and the ratio (target >= 1.6 on this 2-core machine).

    .venv/bin/python bench/scale.py [--incidents 120] [--threads 2]

Deliveries go through two gunicorn web workers; each job is a full check of an incident
whose linked postmortem (a few paragraphs) is read from a fake GitHub on 127.0.0.1 and
analysed with the trained pipeline. Prints numbers; asserts nothing. Needs the
PostgreSQL and Redis servers of this machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.webhooks import free_port, wait_http  # noqa: E402
from connector.signatures import sign_github  # noqa: E402
from settings import load_settings  # noqa: E402
from store.db import make_engine  # noqa: E402
from store.models import Job  # noqa: E402
from store.testing import temporary_database  # noqa: E402
from tests.fakes.github import FakeGitHub  # noqa: E402

BIN = ROOT / ".venv" / "bin"
REPO = "acme/ops"
POSTMORTEM = """# Postmortem {n}

## What happened
The on-call engineer should have checked the replica lag before the failover. The deploy
script failed to start because the artifact bucket was unreachable. Latency rose at 14:05
and recovered at 14:40 once the cache was warmed again.

## Contributing factors
- The failover runbook does not mention replica lag.
- Alerts for the artifact bucket go to a channel nobody watches at night.

## Action items
- Add a lag check to the failover script (#{n}, owner @sre, due 2026-12-01)
- Update the failover runbook (https://wiki.example/runbooks/failover)
"""


SECRET = b"scale-bench-secret"


def seed(fake: FakeGitHub, count: int) -> list[int]:
    numbers = []
    for n in range(count):
        pm = fake.add_issue(REPO, f"Postmortem {n}", POSTMORTEM.format(n=n),
                            labels=["postmortem"])
        number = fake.add_issue(REPO, f"Incident {n}", f"Postmortem: #{pm}",
                                labels=["incident"])
        fake.close_issue(REPO, number)
        numbers.append(number)
    return numbers


def enqueue_all(port: int, numbers: list[int], fake: FakeGitHub) -> None:
    """Signed `issues.closed` deliveries to the gunicorn web workers, as GitHub sends them."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for number in numbers:
        body = json.dumps({
            "action": "closed", "issue": fake.issue(REPO, number),
            "repository": {"full_name": REPO}, "sender": {"login": "ana", "type": "User"},
        }).encode()
        conn.request("POST", "/webhooks/github", body=body, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign_github(SECRET, body)})
        response = conn.getresponse()
        response.read()
        assert response.status == 202, response.status


def done_count(env: dict) -> int:
    engine = make_engine(load_settings(env=env).database)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).where(Job.status == "done")).scalar_one()
    engine.dispose()
    return count


def run(env: dict, processes: int, threads: int, numbers: list[int], fake, port: int) -> float:
    start_done = done_count(env)
    workers = [
        subprocess.Popen([str(BIN / "pmguard"), "worker", "--workers", str(threads)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(processes)
    ]
    try:
        time.sleep(6)  # every process imports spaCy and the app before the clock starts
        started = time.perf_counter()
        enqueue_all(port, numbers, fake)
        while done_count(env) - start_done < len(numbers):
            time.sleep(0.1)
            if time.perf_counter() - started > 600:
                break
        elapsed = time.perf_counter() - started
        finished = done_count(env) - start_done
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
    return finished / elapsed if elapsed else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=120)
    parser.add_argument("--threads", type=int, default=2, help="threads per worker process")
    args = parser.parse_args(argv)
    fake = FakeGitHub().start()
    fake.add_repo(REPO)
    with temporary_database(prefix="pmguard_scale") as db:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PMGUARD_DATABASE_URL": db,
               "PMGUARD_REDIS_URL": "redis://127.0.0.1:6379/13",
               "PMGUARD_DATA_DIR": str(Path("/tmp") / "pmguard-scale"),
               "PMGUARD_GITHUB_API_URL": fake.url, "PMGUARD_GITHUB_TOKEN": fake.token,
               "PMGUARD_GITHUB_BOT_LOGIN": fake.user,
               "PMGUARD_GITHUB_WEBHOOK_SECRET": SECRET.decode()}
        subprocess.run([str(BIN / "pmguard"), "db", "upgrade"], env=env, check=True,
                       capture_output=True)
        from worker.jobs import make_huey

        make_huey(load_settings(env=env)).flush()
        port = free_port()
        web = subprocess.Popen(
            [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "--log-level",
             "warning", "app:create_app()"], env=env, cwd=ROOT)
        try:
            wait_http(port)
            one = run(env, 1, args.threads, seed(fake, args.incidents), fake, port)
            two = run(env, 2, args.threads, seed(fake, args.incidents), fake, port)
        finally:
            web.send_signal(signal.SIGTERM)
            web.wait(timeout=30)
    fake.stop()
    print(f"{args.incidents} checks per run, deliveries through 2 gunicorn web workers, "
          f"{args.threads} threads per worker process, PostgreSQL + Redis")
    print(f"  1 worker process : {one:6.1f} jobs/s")
    print(f"  2 worker processes: {two:6.1f} jobs/s")
    print(f"  ratio {two / one:.2f} (target >= 1.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
