"""End to end with Jira (Cloud and Data Center): a signed delivery -> 202 -> worker -> the
fake Jira shows one comment, one verdict label and, with reopen enforcement, the transition.
The `jira` library talks HTTP to tests/fakes/jira.py."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from check.comment import JIRA_MARKER
from tests.fakes.jira import FakeJira
from tests.service_env import ServiceEnv, backend_urls, make_settings, wait_until

BLAME = (
    "h2. What happened\n\nThe DBA forgot to pause replication before the upgrade.\n\n"
    "h2. Action items\n\n* Pause replication automatically in the upgrade script (OPS-90)\n"
)
CLEAN_PAGE = (
    "<h2>What happened</h2><p>The upgrade script does not pause replication.</p>"
    "<h2>Action items</h2><ul><li>Pause replication in the upgrade script (OPS-90)</li>"
    "<li>Document the step in the upgrade runbook https://wiki.example/runbooks/db</li></ul>"
)


@pytest.fixture(params=[("Cloud", "sqlite"), ("Server", "sqlite"), ("Cloud", "postgres-redis")],
                ids=["cloud-sqlite", "dc-sqlite", "cloud-postgres-redis"])
def env(request, tmp_path: Path):
    deployment, backend = request.param
    with FakeJira(deployment) as fake, backend_urls(backend, tmp_path) as (db, redis):
        creds = fake.credentials()
        settings = make_settings(tmp_path, db, redis, jira_url=fake.url)
        from dataclasses import replace

        settings = replace(
            settings,
            jira=replace(settings.jira, email=creds.get("email", ""),
                         token=creds.get("token", ""), pat=creds.get("pat", "")),
        )
        e = ServiceEnv(settings, queue_name=f"pmguard-jira-{uuid.uuid4().hex[:8]}")
        e.fake = fake
        fake.add_project("OPS")
        e.start_worker()
        try:
            yield e
        finally:
            e.stop()


def closed_event(fake: FakeJira, key: str) -> dict:
    issue = fake.issue(key)
    return {
        "timestamp": 1700000000000,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": {"accountId": "u-1", "displayName": "Ana"},
        "issue": issue,
        "changelog": {"id": "1", "items": [
            {"field": "status", "fieldtype": "jira", "from": "3", "fromString": "In Progress",
             "to": "10002", "toString": "Done"},
            {"field": "resolution", "fieldtype": "jira", "from": None, "fromString": None,
             "to": "10000", "toString": "Done"},
        ]},
    }


def ours(fake: FakeJira, key: str) -> list[dict]:
    return [c for c in fake.comments(key) if JIRA_MARKER in c["body"]]


def close(env, key: str, delivery: str | None = None):
    env.fake.transition(key, "Done")
    return env.jira(closed_event(env.fake, key), delivery)


def test_closed_incident_without_postmortem(env) -> None:
    key = env.fake.add_issue("OPS", "Payments down", "Card payments failed.")
    assert close(env, key).status_code == 202
    [comment] = wait_until(lambda: ours(env.fake, key), what="comment")
    assert "No postmortem is linked yet" in comment["body"]
    wait_until(lambda: "postmortem:missing" in env.fake.labels(key))


def test_linked_postmortem_issue_with_blame_needs_review(env) -> None:
    pm = env.fake.add_issue("OPS", "Postmortem: payments", BLAME, issue_type="Postmortem")
    key = env.fake.add_issue("OPS", "Payments down", "")
    env.fake.link(key, pm, "Relates")
    assert close(env, key).status_code == 202
    [comment] = wait_until(lambda: ours(env.fake, key))
    assert "pausing replication" in comment["body"] or "pause replication" in comment["body"]
    wait_until(lambda: "postmortem:needs-review" in env.fake.labels(key))


def allow(env, **places) -> None:
    from dataclasses import replace

    from rules.incident_policy import PostmortemSources

    env.service.policy = replace(env.service.policy, postmortem_sources=PostmortemSources(**places))


def test_confluence_postmortem_reads_clean(env) -> None:
    allow(env, confluence=("ENG",))  # pages are read only from spaces the policy names
    url = env.fake.add_confluence_page(4242, "Postmortem: payments", CLEAN_PAGE)
    key = env.fake.add_issue("OPS", "Payments down", "")
    env.fake.add_remote_link(key, url, "Postmortem")
    assert close(env, key).status_code == 202
    wait_until(lambda: "postmortem:ok" in env.fake.labels(key), what="ok label")


def test_redelivery_and_reopen_enforcement(env) -> None:
    env.service.policy = env.service.policy.__class__(enforcement="reopen")
    key = env.fake.add_issue("OPS", "Payments down", "")
    assert close(env, key, delivery="jira-d-1").status_code == 202
    again = env.jira(closed_event(env.fake, key), "jira-d-1")
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    wait_until(lambda: env.fake.status(key) == "Open", what="reopen transition")
    assert len(ours(env.fake, key)) == 1


def test_other_issue_types_need_nothing(env) -> None:
    key = env.fake.add_issue("OPS", "Rename a button", "", issue_type="Task")
    env.fake.transition(key, "Done")
    assert env.jira(closed_event(env.fake, key)).status_code == 204


def test_several_jira_sites_each_with_its_own_secret(tmp_path: Path) -> None:
    import json
    from dataclasses import replace

    from connector.signatures import sign_jira
    from settings import JiraSettings

    with FakeJira("Cloud") as cloud, FakeJira("Server") as dc:
        settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "",
                                 jira_url=cloud.url, **{
                                     "jira_email": cloud.email, "jira_token": cloud.token})
        settings = replace(settings, jira_sites=(
            JiraSettings(url=dc.url, pat=dc.pat, webhook_secret="second-site-secret"),
        ))
        e = ServiceEnv(settings, queue_name=f"pmguard-sites-{uuid.uuid4().hex[:8]}")
        e.start_worker()
        try:
            dc.add_project("OPS")
            key = dc.add_issue("OPS", "Payments down on the DC site", "")
            dc.transition(key, "Done")
            body = json.dumps(closed_event(dc, key)).encode()
            wrong = e.jira(closed_event(dc, key), signature="sha256=" + "0" * 64)
            assert wrong.status_code == 401
            r = e.client.post("/webhooks/jira", data=body, headers={
                "Content-Type": "application/json",
                "X-Atlassian-Webhook-Identifier": "dc-1",
                "X-Hub-Signature": sign_jira(b"second-site-secret", body)})
            assert r.status_code == 202, r.get_json()
            wait_until(lambda: ours(dc, key), what="comment on the second site")
            wait_until(lambda: "postmortem:missing" in dc.labels(key), what="label")
        finally:
            e.stop()


SECRET = "h2. What happened\n\nThe vault key hunter2-SECRET leaked. Ravi forgot to rotate it.\n"
OUTSIDE = "outside the allowed places"


def test_an_issue_in_another_project_and_a_page_in_another_space_are_not_read(env) -> None:
    allow(env, confluence=("ENG",))
    env.fake.add_project("SEC")
    secret = env.fake.add_issue("SEC", "Vault postmortem", SECRET, issue_type="Postmortem")
    page = env.fake.add_confluence_page(
        5151, "Vault page", "<p>The vault key hunter2-SECRET leaked.</p>", space="SEC"
    )
    by_id = f"{env.fake.url}/wiki/pages/viewpage.action?pageId=5151"
    key = env.fake.add_issue("OPS", "Payments down", f"Postmortem: {secret}\nPIR: {by_id}")
    env.fake.link(key, secret, "Relates")
    env.fake.add_remote_link(key, page, "Postmortem")
    assert close(env, key).status_code == 202
    [comment] = wait_until(lambda: ours(env.fake, key))
    body = comment["body"]
    assert body.count(OUTSIDE) == 3, body  # the issue, the page by its URL and by its id
    assert "hunter2" not in body and "Ravi" not in body and "Vault" not in body
    assert env.fake.calls("GET", rf"/issue/{secret}$") == []
    wait_until(lambda: "postmortem:missing" in env.fake.labels(key))


def test_a_project_the_policy_names_is_read(env) -> None:
    allow(env, jira=("PIR",))
    env.fake.add_project("PIR")
    pm = env.fake.add_issue("PIR", "Postmortem: payments", BLAME, issue_type="Postmortem")
    key = env.fake.add_issue("OPS", "Payments down", "")
    env.fake.link(key, pm, "Relates")
    assert close(env, key).status_code == 202
    wait_until(lambda: "postmortem:needs-review" in env.fake.labels(key))
