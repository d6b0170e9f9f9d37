"""/healthz, /readyz, /metrics, and logs that carry delivery ids but never a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from store.db import make_engine
from tests.service_env import ServiceEnv, make_settings
from worker.logs import JsonFormatter, TextFormatter, redact


@pytest.fixture
def env(tmp_path: Path):
    e = ServiceEnv(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "",
                                 github_token="ghp_SECRETTOKENVALUE123"), "pmguard-ops")
    yield e
    e.stop()


def test_healthz_and_readyz(env) -> None:
    assert env.client.get("/healthz").get_json() == {"status": "ok"}
    assert env.client.get("/readyz").get_json() == {"status": "ready"}


def test_readyz_names_what_is_down(env) -> None:
    env.service.engine = make_engine("postgresql://postgres@127.0.0.1:1/pmguard")
    r = env.client.get("/readyz")
    assert r.status_code == 503 and "database" in r.get_json()["problems"]


def test_metrics_count_deliveries_by_source_event_and_outcome(env) -> None:
    payload = {"action": "closed", "issue": {"number": 1, "state": "closed", "labels": []},
               "repository": {"full_name": "acme/ops"}, "sender": {"login": "a"}}
    env.github("issues", payload)
    text = env.client.get("/metrics").get_data(as_text=True)
    assert 'pmguard_deliveries_total{event="issues",outcome="ignored",source="github"}' in text
    assert "pmguard_queue_depth" in text and "pmguard_job_seconds" in text


def record(msg: str, **extra) -> logging.LogRecord:
    r = logging.LogRecord("pmguard.test", logging.INFO, __file__, 1, msg, (), None)
    for k, v in extra.items():
        setattr(r, k, v)
    return r


def test_json_logs_carry_delivery_and_incident() -> None:
    line = JsonFormatter().format(record("delivery enqueued", delivery="d-1",
                                         incident="github:x:acme/ops#3"))
    data = json.loads(line)
    assert data["delivery"] == "d-1" and data["incident"] == "github:x:acme/ops#3"


@pytest.mark.parametrize(
    "message",
    [
        "Authorization: token ghp_SECRETTOKENVALUE123",
        'request headers {"Authorization": "Bearer abc.def.ghi"}',
        "private_key=-----BEGINRSA",
        "password: hunter2hunter2",
        "webhook secret=hook-secret-for-tests",
    ],
)
def test_secrets_never_reach_a_log_line(message: str) -> None:
    for formatter in (JsonFormatter(), TextFormatter("%(message)s")):
        line = formatter.format(record(message))
        for secret in ("ghp_SECRETTOKENVALUE123", "abc.def.ghi", "BEGINRSA", "hunter2hunter2",
                       "hook-secret-for-tests"):
            assert secret not in line, line
    assert "***" in redact(message)


def test_a_failing_check_logs_no_token(env, caplog, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    payload = {"action": "closed",
               "issue": {"number": 1, "state": "closed", "labels": [{"name": "incident"}]},
               "repository": {"full_name": "acme/ops"}, "sender": {"login": "a"}}
    assert env.github("issues", payload).status_code == 202
    from store import queries
    from store.db import session_scope

    with session_scope(env.service.sessions) as session:
        [job] = queries.recent_jobs(session)
    env.service.jobs.run(job.id)  # the tracker is unreachable: the job fails and retries
    assert caplog.records, "the failing job should have logged something"
    raw = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    formatted = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "ghp_SECRETTOKENVALUE123" not in raw and "ghp_SECRETTOKENVALUE123" not in formatted
