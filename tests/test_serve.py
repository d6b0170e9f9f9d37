"""`pmguard serve` as a real process: starts with nothing but a secret, migrates its SQLite
file, answers a signed ping and a relevant delivery, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from connector.signatures import sign_github
from tests.service_env import free_port

ROOT = Path(__file__).resolve().parents[1]


def pythonpath() -> str:
    # This checkout first; then whatever the test run itself was given.
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


def threads_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("Threads:")))


def post(url: str, body: bytes, headers: dict) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_starts_answers_and_stops(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PMGUARD_DATA_DIR": str(tmp_path),
        "PMGUARD_GITHUB_WEBHOOK_SECRET": "s",
        "PMGUARD_GITHUB_TOKEN": "t",
        "PMGUARD_GITHUB_API_URL": "http://127.0.0.1:9",  # nothing listens: jobs just retry
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port)],
        cwd=tmp_path, env={**env, "PYTHONPATH": pythonpath()},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("serve did not come up")
        body = json.dumps({"zen": "hi", "hook_id": 1}).encode()
        headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "p1",
                   "Content-Type": "application/json",
                   "X-Hub-Signature-256": sign_github(b"s", body)}
        assert post(f"{base}/webhooks/github", body, headers) == 200
        headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
        assert post(f"{base}/webhooks/github", body, headers) == 401
        closed = json.dumps({
            "action": "closed",
            "issue": {"number": 1, "state": "closed", "labels": [{"name": "incident"}]},
            "repository": {"full_name": "acme/ops"},
            "sender": {"login": "ana", "type": "User"},
        }).encode()
        headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "c1",
                   "Content-Type": "application/json",
                   "X-Hub-Signature-256": sign_github(b"s", closed)}
        assert post(f"{base}/webhooks/github", closed, headers) == 202
        assert (tmp_path / "pmguard.db").exists() and (tmp_path / "secret_key").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "serving on" in out and "Traceback" not in out
    assert "t" not in [w.strip(",") for w in out.split()]  # the token never reaches the log


def test_slow_clients_do_not_get_a_thread_each(tmp_path: Path) -> None:
    # Werkzeug's development server gave every connection a thread: a few hundred clients
    # sending a header a minute held as many threads. The production server reads
    # requests without a thread and runs a fixed number of them.
    port = free_port()
    env = {**os.environ, "PMGUARD_DATA_DIR": str(tmp_path), "PMGUARD_GITHUB_WEBHOOK_SECRET": "s",
           "PMGUARD_GITHUB_TOKEN": "t", "PMGUARD_GITHUB_API_URL": "http://127.0.0.1:9",
           "PYTHONPATH": pythonpath()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    slow: list[socket.socket] = []
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("serve did not come up")
        before = threads_of(proc.pid)
        for _ in range(60):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the end
            slow.append(s)
        time.sleep(1)
        assert threads_of(proc.pid) < before + 10
        started = time.monotonic()
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
            assert r.status == 200
        assert time.monotonic() - started < 2
    finally:
        for s in slow:
            s.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
