"""Webhook throughput and latency under gunicorn, against the bare Flask endpoint on the
same server, and the time from a delivery to the comment on a (fake) tracker.

    .venv/bin/python bench/webhooks.py [--requests 2000] [--concurrency 8] [--rate 10]

Everything listens on 127.0.0.1 and is bounded in count and time. Prints numbers; asserts
nothing.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connector.signatures import sign_github  # noqa: E402
from tests.fakes.github import FakeGitHub  # noqa: E402

SECRET = b"bench-secret"
REPO = "acme/ops"
BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not come up")


_SEQUENCE = itertools.count()


def closed_payload(number: int, labels: tuple[str, ...]) -> bytes:
    # Every body differs, as real deliveries' timestamps make them: the intake treats the
    # same signed body under a new delivery id as a replay (migration 0006).
    updated = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=next(_SEQUENCE))
    return json.dumps({
        "action": "closed",
        "issue": {"number": number, "state": "closed", "state_reason": "completed",
                  "labels": [{"name": name} for name in labels], "title": "x",
                  "user": {"login": "ana"}, "updated_at": updated.isoformat()},
        "repository": {"full_name": REPO},
        "sender": {"login": "ana", "type": "User"},
    }).encode()


def load(port: int, path: str, make_body, total: int, concurrency: int) -> dict:
    """`total` POSTs from `concurrency` keep-alive connections; latencies in ms."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    # Bodies and signatures are made before the clock starts: the load generator shares
    # the machine's two cores with the server, and signing must not tax one side only.
    prepared = iter([make_body(i) for i in range(total)])

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for body, headers in prepared:
            started = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                statuses[response.status] = statuses.get(response.status, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": total / wall,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "statuses": statuses,
    }


def median_round(runs: list[dict]) -> dict:
    """The round with the median throughput, its latencies, and every round's rate."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    middle = dict(ordered[len(ordered) // 2])
    middle["rounds"] = " ".join(f"{r['rps']:.0f}" for r in runs)
    statuses: dict[int, int] = {}
    for r in runs:
        for status, count in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    middle["statuses"] = statuses
    return middle


def github_delivery(labels: tuple[str, ...]):
    def make(i: int):
        body = closed_payload(1 + i % 50, labels)
        return body, {
            "Content-Type": "application/json",
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign_github(SECRET, body),
        }

    return make


def bare_delivery(i: int):
    body = closed_payload(1, ("docs",))
    return body, {"Content-Type": "application/json"}


def _engine(env: dict):
    from settings import load_settings
    from store.db import make_engine

    return make_engine(load_settings(env=env).database)


def clear_jobs(env: dict) -> None:
    """The throughput phase queued thousands of jobs; the latency phase starts empty."""
    from sqlalchemy import text

    from settings import load_settings
    from worker.jobs import make_huey

    with _engine(env).begin() as conn:
        conn.execute(text("delete from jobs"))
    make_huey(load_settings(env=env)).flush()


def print_job_timings(env: dict) -> None:
    """Where the time goes: queued -> finished, from the job rows."""
    from sqlalchemy import select

    from store.models import Job

    with _engine(env).connect() as conn:
        rows = conn.execute(
            select(Job.created_at, Job.finished_at, Job.attempts).where(Job.status == "done")
        ).all()
    total = sorted((f - c).total_seconds() for c, f, _a in rows if f)
    if total:
        print(f"  job rows: {len(rows)} done, created -> finished median "
              f"{statistics.median(total):.2f} s, max {total[-1]:.2f} s, "
              f"retried {sum(1 for r in rows if r[2] > 1)}")


def print_intake_batches(port: int) -> None:
    """How many deliveries shared each commit, from the service's own histogram."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("pmguard_intake_batch_deliveries_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    count = values.get("pmguard_intake_batch_deliveries_count", 0)
    if count:
        total = values["pmguard_intake_batch_deliveries_sum"]
        singles = values.get('pmguard_intake_batch_deliveries_bucket{le="1.0"}', 0)
        print(f"  intake: {total:.0f} deliveries in {count:.0f} commits, "
              f"{total / count:.2f} per commit, {singles / count:.0%} of commits alone")


def deliver_closed(fake, port: int, number: int) -> None:
    fake.close_issue(REPO, number)
    body = closed_payload(number, ("incident",))
    # A connection per delivery, as a tracker sends them: at this rate a kept-alive one
    # would sit idle past gunicorn's keep-alive timeout between deliveries.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/webhooks/github", body=body, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign_github(SECRET, body)})
    conn.getresponse().read()
    conn.close()


def latency(fake, port: int, count: int, rate: float, seconds: float) -> None:
    """Close `count` incidents at `rate` per second; time each delivery to its comment."""
    # One incident first, off the clock: the worker has loaded spaCy and checked it, as a
    # worker that has been running for a while would have.
    first = fake.add_issue(REPO, "Warm-up", "Postmortem: none yet", labels=["incident"])
    deliver_closed(fake, port, first)
    deadline = time.monotonic() + 120
    while not fake.comments(REPO, first) and time.monotonic() < deadline:
        time.sleep(0.05)
    numbers = [fake.add_issue(REPO, f"Incident {i}", "Postmortem: none yet",
                              labels=["incident"]) for i in range(count)]
    sent: dict[int, float] = {}
    done: dict[int, float] = {}
    sending = threading.Event()

    def poll() -> None:  # watch the tracker while deliveries are still going out
        deadline = time.perf_counter() + seconds + 60
        while time.perf_counter() < deadline and (sending.is_set() or len(done) < len(sent)):
            for number in list(sent):
                if number not in done and fake.comments(REPO, number):
                    done[number] = time.perf_counter()
            time.sleep(0.01)

    sending.set()
    poller = threading.Thread(target=poll)
    poller.start()
    started = time.perf_counter()
    for i, number in enumerate(numbers):
        time.sleep(max(0.0, started + i / rate - time.perf_counter()))
        sent[number] = time.perf_counter()
        deliver_closed(fake, port, number)
    sending.clear()
    poller.join()
    waits = sorted(done[k] - sent[k] for k in done)
    if waits:
        print(f"delivery -> comment at {rate:.0f} incidents/s, {len(waits)}/{len(numbers)} "
              f"commented: median {statistics.median(waits):.2f} s, "
              f"p90 {waits[max(0, int(len(waits) * 0.9) - 1)]:.2f} s, max {waits[-1]:.2f} s "
              f"(target: median < 2 s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=10,
                        help="the kinds take turns this many times; each reports its median")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="gunicorn threads per web worker (>1 uses the gthread worker)")
    parser.add_argument("--rate", type=float, default=10.0, help="incidents per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="pmguard-bench-"))
    fake = FakeGitHub().start()
    fake.add_repo(REPO)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PMGUARD_DATA_DIR": str(tmp),
        "PMGUARD_GITHUB_WEBHOOK_SECRET": SECRET.decode(),
        "PMGUARD_GITHUB_TOKEN": fake.token,
        "PMGUARD_GITHUB_API_URL": fake.url,
        "PMGUARD_GITHUB_BOT_LOGIN": fake.user,
        "PMGUARD_LOG_FORMAT": "json",
        # Every gunicorn worker's metrics summed on /metrics: the intake's batch sizes.
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
    }
    (tmp / "metrics").mkdir()
    subprocess.run([str(BIN / "pmguard"), "db", "upgrade"], env=env, check=True,
                   capture_output=True)
    web = subprocess.Popen(
        [str(BIN / "gunicorn"), "-w", str(args.web_workers), "--threads", str(args.threads),
         "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "bench.wsgi:app"],
        env=env, cwd=ROOT,
    )
    worker = None
    try:
        wait_http(port)
        n, c = args.requests, args.concurrency
        load(port, "/bench/bare", bare_delivery, 200, c)  # warm up every worker
        # The kinds take turns, round after round, and each kind's figure is its median
        # round: a burst of other work on the machine then hits all three alike instead of
        # whichever kind happened to be running.
        kinds = {
            "bare Flask": ("/bench/bare", bare_delivery),
            "needs nothing (204)": ("/webhooks/github", github_delivery(("docs",))),
            "relevant (202)": ("/webhooks/github", github_delivery(("incident",))),
        }
        rounds: dict[str, list[dict]] = {name: [] for name in kinds}
        for _ in range(args.rounds):
            for name, (path, make) in kinds.items():
                rounds[name].append(load(port, path, make, n // args.rounds, c))
        results = {name: median_round(runs) for name, runs in rounds.items()}
        bare, noop, relevant = results.values()
        print(f"gunicorn {args.web_workers} workers x {args.threads} threads, {n} requests per "
              f"kind in {args.rounds} rounds, concurrency {c}")
        for name, r in results.items():
            print(f"  {name:22s} {r['rps']:8.0f} req/s  p50 {r['p50']:6.1f} ms  "
                  f"p99 {r['p99']:6.1f} ms  {r['statuses']}  rounds {r['rounds']}")
        names = list(kinds)
        for name, kind, r, target in (("needs nothing", names[1], noop, 0.8),
                                      ("relevant", names[2], relevant, 0.5)):
            # Each round's kind against the same round's bare endpoint, seconds apart: the
            # machine's drift cancels out of the pair; the median pair is the figure.
            paired = sorted(k["rps"] / b["rps"]
                            for k, b in zip(rounds[kind], rounds[names[0]], strict=True))
            print(f"  ratio {name:14s} throughput {statistics.median(paired):.2f} "
                  f"(target >= {target}; rounds {paired[0]:.2f}-{paired[-1]:.2f}), "
                  f"p50 {bare['p50'] / r['p50']:.2f}, p99 {bare['p99'] / r['p99']:.2f}")

        print_intake_batches(port)

        # Delivery -> comment on the fake tracker, at a steady rate, with one worker process.
        count = int(args.rate * args.seconds)
        if count:
            clear_jobs(env)
            worker = subprocess.Popen([str(BIN / "pmguard"), "worker", "--workers", "4"],
                                      env=env, cwd=tmp, stderr=subprocess.DEVNULL)
            latency(fake, port, count, args.rate, args.seconds)
            print_job_timings(env)
    finally:
        for proc in (worker, web):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
