"""`pmguard serve` with nothing configured runs the demo: a sandbox GitHub with three
incidents closed through signed webhooks, and a dashboard that shows the three outcomes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from sandbox.github import DEFAULT_TOKEN
from tests.service_env import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]


def test_serve_without_configuration_runs_the_demo(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMGUARD_")}
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env.update({"PMGUARD_DATA_DIR": str(tmp_path), "PYTHONPATH": pythonpath})
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("sign in as" in x for x in lines):
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        password = re.search(r"with password '([^']+)'", text).group(1)
        sandbox = re.search(r"sandbox GitHub at (\S+) ", text).group(1)
        base = f"http://127.0.0.1:{port}"

        web = requests.Session()
        page = web.get(f"{base}/login", timeout=10).text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        r = web.post(f"{base}/login", data={"username": "demo", "password": password,
                                            "csrf_token": token}, timeout=10)
        assert r.status_code == 200 and "/incidents" in r.url

        def outcomes() -> set[str]:
            html = web.get(f"{base}/incidents", timeout=10).text
            return {v for v in ("needs-review", "missing", "ok") if f"verdict-{v}" in html
                    or f"badge-{v}" in html or f"status-{v}" in html}

        queue = wait_until(lambda: len(outcomes()) == 3 and outcomes(), timeout=60,
                           what="the three outcomes on the dashboard")
        assert queue == {"needs-review", "missing", "ok"}

        headers = {"Authorization": f"token {DEFAULT_TOKEN}"}
        for number in (3, 4, 5):
            comments = requests.get(
                f"{sandbox}/repos/acme/payments/issues/{number}/comments", headers=headers,
                timeout=10).json()
            assert len(comments) == 1, comments
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
