"""The webhook endpoints' answers: signatures, sizes, JSON, ping, irrelevant events, 503."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.signatures import sign_github
from tests.service_env import SECRET, ServiceEnv, make_settings


@pytest.fixture
def env(tmp_path: Path):
    e = ServiceEnv(
        make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "",
                      github_url="https://api.github.invalid", github_token="t"),
        "pmguard-webhooks",
    )
    yield e
    e.stop()


def closed_payload(labels=("incident",)) -> dict:
    return {
        "action": "closed",
        "issue": {"number": 3, "state": "closed", "state_reason": "completed", "title": "x",
                  "labels": [{"name": n} for n in labels], "user": {"login": "a"}},
        "repository": {"full_name": "acme/ops"},
        "sender": {"login": "ana", "type": "User"},
    }


def test_ping_answers_200(env) -> None:
    r = env.github("ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    assert r.status_code == 200 and r.get_json()["pong"] is True


@pytest.mark.parametrize("signature", ["", "sha256=" + "0" * 64, "sha1=abc", "garbage"])
def test_missing_or_wrong_signature_is_401(env, signature: str) -> None:
    r = env.github("issues", closed_payload(), signature=signature or "none")
    assert r.status_code == 401
    assert "signature" in r.get_json()["error"].lower()


def test_signature_over_other_bytes_is_401(env) -> None:
    body = json.dumps(closed_payload()).encode()
    r = env.client.post(
        "/webhooks/github", data=body + b" ",
        headers={"X-GitHub-Event": "issues", "X-GitHub-Delivery": "x",
                 "X-Hub-Signature-256": sign_github(SECRET.encode(), body),
                 "Content-Type": "application/json"},
    )
    assert r.status_code == 401


def test_malformed_json_is_400_with_a_clear_message(env) -> None:
    body = b'{"action": "closed",'
    r = env.client.post(
        "/webhooks/github", data=body,
        headers={"X-GitHub-Event": "issues", "X-GitHub-Delivery": "x",
                 "X-Hub-Signature-256": sign_github(SECRET.encode(), body),
                 "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "malformed JSON" in r.get_json()["error"]


def test_oversized_body_is_413(env) -> None:
    env.app.config["MAX_CONTENT_LENGTH"] = 1024
    body = json.dumps({"pad": "x" * 4096}).encode()
    r = env.client.post(
        "/webhooks/github", data=body,
        headers={"X-GitHub-Event": "issues", "X-GitHub-Delivery": "x",
                 "X-Hub-Signature-256": sign_github(SECRET.encode(), body),
                 "Content-Type": "application/json"},
    )
    assert r.status_code == 413


def test_events_that_need_nothing_answer_204(env) -> None:
    assert env.github("issues", closed_payload(labels=("docs",))).status_code == 204
    assert env.github("installation", {"action": "created"}).status_code == 204
    assert env.github("issues", {**closed_payload(), "action": "reopened"}).status_code == 204


def test_relevant_event_is_durably_enqueued_with_202(env) -> None:
    r = env.github("issues", closed_payload(), delivery="abc")
    assert r.status_code == 202 and r.get_json()["status"] == "enqueued"
    from store import queries
    from store.db import session_scope

    with session_scope(env.service.sessions) as session:
        [job] = queries.recent_jobs(session)
        assert job.status == "queued" and job.payload["delivery"] == "abc"


def test_a_replayed_body_with_a_new_delivery_id_makes_no_new_job(env) -> None:
    assert env.github("issues", closed_payload(), delivery="real").status_code == 202
    r = env.github("issues", closed_payload(), delivery="replayed-with-a-new-id")
    assert r.status_code == 200 and r.get_json()["status"] == "duplicate"
    from store import queries
    from store.db import session_scope

    with session_scope(env.service.sessions) as session:
        assert len(queries.recent_jobs(session)) == 1


def test_form_encoded_deliveries_are_read_too(env) -> None:
    from urllib.parse import urlencode

    body = urlencode({"payload": json.dumps(closed_payload())}).encode()
    r = env.client.post(
        "/webhooks/github", data=body,
        headers={"X-GitHub-Event": "issues", "X-GitHub-Delivery": "form-1",
                 "X-Hub-Signature-256": sign_github(SECRET.encode(), body),
                 "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 202


def test_database_down_answers_503_and_writes_nothing(env) -> None:
    from store.db import make_engine
    from store.intake import Intake

    # A real connection failure: nothing listens on port 1.
    env.service.engine = make_engine("postgresql://postgres@127.0.0.1:1/pmguard")
    env.service.intake = Intake(env.service.engine)
    r = env.github("issues", closed_payload(), delivery="while-down")
    assert r.status_code == 503 and "retry" in r.get_json()["error"]
    assert "Traceback" not in r.get_data(as_text=True)


def test_no_secret_configured_refuses_everything(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "")
    from dataclasses import replace

    settings = replace(settings, github=replace(settings.github, webhook_secret=""))
    e = ServiceEnv(settings, "pmguard-nosecret")
    assert e.github("issues", closed_payload()).status_code == 401
    e.stop()


# --- signed but malformed bodies: 400 with a message, never a 500 ----------------------


@pytest.fixture
def jira_env(tmp_path: Path):
    e = ServiceEnv(
        make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "",
                      jira_url="https://acme.atlassian.net", jira_email="a@b.c",
                      jira_token="t"),
        "pmguard-webhooks-jira",
    )
    yield e
    e.stop()


def signed_github(env, body: bytes, event: str = "issues", delivery: str = "m1"):
    return env.client.post("/webhooks/github", data=body, headers={
        "X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign_github(SECRET.encode(), body),
        "Content-Type": "application/json"})


@pytest.mark.parametrize("depth", [50_000, 200])
def test_deeply_nested_json_is_400(env, depth: int) -> None:
    body = b'{"action": "closed", "issue": ' + b"[" * depth + b"]" * depth + b"}"
    r = signed_github(env, body)
    assert r.status_code == 400
    assert "nested" in r.get_json()["error"]


@pytest.mark.parametrize(("change", "field"), [
    ({"labels": 5}, "issue.labels"),
    ({"labels": ["incident"]}, "issue.labels"),
    ({"number": {"n": 3}}, "issue.number"),
    ({"state_reason": ["completed"]}, "issue.state_reason"),
])
def test_github_fields_of_the_wrong_shape_are_400(env, change: dict, field: str) -> None:
    payload = closed_payload()
    payload["issue"].update(change)
    r = env.github("issues", payload)
    assert r.status_code == 400
    assert r.get_json()["error"].startswith("malformed payload") and field in r.get_json()[
        "error"]


def test_github_repository_of_the_wrong_shape_is_400(env) -> None:
    r = env.github("issues", {**closed_payload(), "repository": {"full_name": 7}})
    assert r.status_code == 400 and "repository.full_name" in r.get_json()["error"]


def jira_comment(body) -> dict:
    return {
        "webhookEvent": "comment_created",
        "issue": {"id": "10001", "key": "OPS-1", "fields": {
            "status": {"statusCategory": {"key": "done"}}, "project": {"key": "OPS"}}},
        "comment": {"body": body, "author": {"accountId": "u1"}},
    }


@pytest.mark.parametrize(("payload", "field"), [
    (jira_comment({"type": "doc", "content": 5}), "comment.body"),
    ({**jira_comment("hi"), "issue": {"key": {"k": 1}}}, "issue.key"),
    ({**jira_comment("hi"), "webhookEvent": ["comment_created"]}, "webhookEvent"),
    ({"webhookEvent": "jira:issue_updated", "issue": {"key": "OPS-1"},
      "changelog": {"items": 5}}, "changelog.items"),
])
def test_jira_fields_of_the_wrong_shape_are_400(jira_env, payload: dict, field: str) -> None:
    r = jira_env.jira(payload)
    assert r.status_code == 400
    assert r.get_json()["error"].startswith("malformed payload") and field in r.get_json()[
        "error"]


def test_unknown_event_names_share_one_metrics_series(env) -> None:
    from worker.metrics import DELIVERIES

    for i in range(3):
        assert env.github(f"made-up-{i}", {"zen": "x"}).status_code == 204
    events = {s.labels["event"] for m in DELIVERIES.collect() for s in m.samples}
    assert not any(e.startswith("made-up") for e in events)
    assert "other" in events
