"""Fuzzing the webhook and API endpoints with hypothesis: whatever arrives, the answer is
a 2xx/4xx with a JSON error, never a 5xx and never a traceback."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.signatures import sign_github, sign_jira
from store import users as store_users
from store.db import session_scope
from tests.service_env import SECRET, ServiceEnv, make_settings
from tests.web_helpers import cheap_hashing  # noqa: F401

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=5),
    max_leaves=20,
)
# Payload-shaped objects: the keys the parsers read, with anything as values.
SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "action": st.sampled_from(["closed", "reopened", "edited", "created", "labeled"]) | JSON,
        "issue": st.fixed_dictionaries({}, optional={
            "number": st.integers() | JSON, "state": JSON, "labels": JSON, "key": JSON,
            "fields": JSON, "self": JSON, "pull_request": JSON, "user": JSON}),
        "repository": st.fixed_dictionaries({}, optional={"full_name": JSON}) | JSON,
        "sender": JSON, "comment": JSON, "changes": JSON, "changelog": JSON,
        "webhookEvent": st.sampled_from(["jira:issue_updated", "comment_created",
                                         "issuelink_created"]) | JSON,
        "issueLink": JSON, "user": JSON,
    },
)
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    e = ServiceEnv(make_settings(tmp, f"sqlite:///{tmp / 'db.sqlite'}", "", github_token="t",
                                 jira_url="https://acme.atlassian.net", jira_email="a@b.c",
                                 jira_token="t"), "pmguard-fuzz")
    yield e
    e.stop()


def ok(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    body = response.get_data(as_text=True)
    assert "Traceback" not in body
    if response.status_code >= 400:
        assert response.is_json and response.get_json().get("error")


@FUZZ
@given(body=st.binary(max_size=300), event=st.text(max_size=20),
       signed=st.booleans(), delivery=st.text(max_size=40))
def test_github_webhook_with_arbitrary_bytes(env, body, event, signed, delivery) -> None:
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
               "Content-Type": "application/json"}
    if signed:
        headers["X-Hub-Signature-256"] = sign_github(SECRET.encode(), body)
    try:
        response = env.client.post("/webhooks/github", data=body, headers=headers)
    except ValueError:  # werkzeug refuses header values with newlines before we see them
        return
    ok(response)


@FUZZ
@given(payload=SHAPED | JSON, event=st.sampled_from(["issues", "issue_comment", "ping",
                                                      "installation", "push"]))
def test_github_webhook_with_signed_payload_shapes(env, payload, event) -> None:
    body = json.dumps(payload).encode()
    ok(env.client.post("/webhooks/github", data=body, headers={
        "X-GitHub-Event": event, "X-GitHub-Delivery": "fuzz",
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign_github(SECRET.encode(), body)}))


@FUZZ
@given(payload=SHAPED | JSON)
def test_jira_webhook_with_signed_payload_shapes(env, payload) -> None:
    body = json.dumps(payload).encode()
    ok(env.client.post("/webhooks/jira", data=body, headers={
        "X-Atlassian-Webhook-Identifier": "fuzz", "Content-Type": "application/json",
        "X-Hub-Signature": sign_jira(SECRET.encode(), body)}))


@pytest.fixture(scope="module")
def token(env) -> str:
    with session_scope(env.service.sessions) as session:
        store_users.create_user(session, "fuzzer", "correct horse battery", "admin")
        return store_users.create_token(session, "fuzzer", "fuzz")[1]


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["status", "tracker", "project", "page",
                                               "per_page", "team"]), st.text(max_size=12)),
       path=st.sampled_from(["/api/v1/incidents", "/api/v1/decisions", "/api/v1/rule-packs",
                             "/api/v1/incidents/x%23y", "/api/v1/incidents/x/findings"]))
def test_api_reads_with_arbitrary_parameters(env, token, params, path) -> None:
    ok(env.client.get(path, query_string=params,
                      headers={"Authorization": f"Bearer {token}"}))


@FUZZ
@given(payload=st.fixed_dictionaries({}, optional={"text": JSON, "format": JSON,
                                                  "people": JSON, "pack": JSON,
                                                  "pack_version": JSON}) | JSON)
def test_api_lint_and_decisions_with_arbitrary_json(env, token, payload) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    ok(env.client.post("/api/v1/lint", data=json.dumps(payload), headers=headers))
    ok(env.client.post("/api/v1/findings/1/decision", data=json.dumps(payload),
                       headers=headers))
