"""The JSON API under /api/v1: token and session authentication, roles, CSRF on session
POSTs, every endpoint, JSON errors — and the OpenAPI document walked against the running
app: every documented operation answers a sample request with a documented status and the
documented shape, and every /api/v1 route is documented."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from store import packs
from store import queries as q
from store import users as store_users
from store.db import session_scope
from store.models import Finding, Job
from tests.service_env import ServiceEnv, make_settings
from tests.web_helpers import PASSWORD, cheap_hashing  # noqa: F401
from tests.yaml_bombs import billion_laughs, wide_pack
from web.api import MAX_LINT_CHARS, OPENAPI
from worker import tuning

ROLES = ("engineer", "incident_manager", "admin")
GH_SITE = "https://api.github.com"
JIRA_SITE = "https://ops.example.net"
GH_ID = f"github:{GH_SITE}:acme/payments#12"
JIRA_ID = f"jira:{JIRA_SITE}:OPS:OPS-7"
NOW = datetime.now(UTC)

PACK = """\
name: default
version: "api-1"
rules:
  - id: api.forgot
    category: negative-action
    severity: warning
    message: "This names a person as forgetting a step. What made the step easy to miss?"
    explanation: "Forgetting points at a step nothing prompted."
    suggestion: "What would have prompted this step at that moment?"
    patterns:
      - [{LOWER: {IN: [forgot, forget]}}]
    examples:
      match:
        - "Mira forgot the index rebuild."
        - "Someone forgot to renew the certificate."
      no_match:
        - "The index rebuild did not run."
        - "The certificate renewal job was disabled."
"""


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ServiceEnv]:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "")
    e = ServiceEnv(settings, "pmguard-api")
    with session_scope(e.service.sessions) as db:
        for role in ROLES:
            store_users.create_user(db, role, PASSWORD, role)
    seed(e)
    yield e
    e.stop()


@pytest.fixture
def app(env: ServiceEnv) -> Flask:
    return env.app


@pytest.fixture
def tokens(app: Flask) -> dict[str, str]:
    with session_scope(app.extensions["pmguard"].sessions) as db:
        return {role: store_users.create_token(db, role, "ci")[1] for role in ROLES}


def seed(env: ServiceEnv) -> None:
    """Two incidents: a GitHub one with a flagged postmortem, a Jira one without."""
    with session_scope(env.service.sessions) as db:
        gh = q.upsert_incident(
            db, "github", GH_SITE, "acme/payments", "12", title="Checkout errors",
            state="closed", closed_at=NOW - timedelta(days=2), verdict="needs-review",
            team="payments",
        )
        pm = q.link_postmortem(db, gh, kind="issue", locator="acme/payments#13",
                               title="Checkout errors review")
        text = "Mira forgot the index rebuild.\n\nThe <script>alert(1)</script> tag stayed."
        q.save_analysis(
            db, gh.id, pm.id, text, "markdown", "default", "2026.01.01-1", "blank",
            "needs-review",
            [
                {"rule": "api.forgot", "category": "negative-action", "severity": "warning",
                 "message": "m", "suggestion": "s", "text": "forgot", "sentence":
                 "Mira forgot the index rebuild.", "start": 5, "end": 11, "line": 1,
                 "column": 6, "end_line": 1, "end_column": 12},
                {"rule": "api.forgot", "category": "negative-action", "severity": "warning",
                 "message": "m", "suggestion": "s", "text": "forget", "sentence":
                 "They forget it.", "start": 40, "end": 46, "line": 3, "column": 1,
                 "end_line": 3, "end_column": 7},
            ],
            [{"text": "Rebuild indexes in the deploy", "owner": "@mira", "due": None,
              "tracking": [], "done": None}],
            {"open": 2},
        )
        q.upsert_incident(
            db, "jira", JIRA_SITE, "OPS", "OPS-7", title="Queue stall", state="closed",
            closed_at=NOW - timedelta(days=5), verdict="missing", team="platform",
        )


def finding_ids(env: ServiceEnv) -> list[int]:
    with session_scope(env.service.sessions) as db:
        return list(db.scalars(select(Finding.id).order_by(Finding.id)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_path(incident_id: str, suffix: str = "") -> str:
    return f"/api/v1/incidents/{quote(incident_id, safe=':/')}{suffix}"


def signed_in(app: Flask, username: str) -> tuple[FlaskClient, str]:
    """A session-cookie client and its CSRF token."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    r = client.post("/login", data={"username": username, "password": PASSWORD,
                                    "csrf_token": token})
    assert r.status_code == 302
    page = client.get("/account").get_data(as_text=True)
    return client, re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)


def assert_json_error(r, status: int) -> None:
    assert r.status_code == status, r.get_data(as_text=True)[:300]
    assert r.is_json, r.content_type
    body = r.get_json()
    assert isinstance(body.get("error"), str) and body["error"]
    assert "Traceback" not in body["error"] and "<html" not in r.get_data(as_text=True)


# --- authentication, roles, CSRF --------------------------------------------------------


def test_anonymous_and_bad_tokens_get_401_json(app: Flask) -> None:
    client = app.test_client()
    assert_json_error(client.get("/api/v1/incidents"), 401)
    assert_json_error(client.get("/api/v1/incidents", headers=bearer("nope")), 401)
    assert_json_error(client.post("/api/v1/lint", json={"text": "x"},
                                  headers=bearer("nope")), 401)


def test_token_and_session_both_authenticate(app: Flask, tokens: dict[str, str]) -> None:
    r = app.test_client().get("/api/v1/incidents", headers=bearer(tokens["engineer"]))
    assert r.status_code == 200 and r.get_json()["total"] == 2
    client, _csrf = signed_in(app, "engineer")
    assert client.get("/api/v1/incidents").get_json()["total"] == 2


@pytest.mark.parametrize(
    ("role", "method", "path", "expected"),
    [
        ("engineer", "POST", "/api/v1/findings/1/decision", 403),
        ("incident_manager", "POST", "/api/v1/findings/1/decision", 200),
        ("engineer", "GET", "/api/v1/rule-packs", 403),
        ("incident_manager", "GET", "/api/v1/rule-packs/active", 403),
        ("admin", "GET", "/api/v1/rule-packs", 200),
        ("engineer", "POST", "/api/v1/lint", 200),
        ("engineer", "GET", "/api/v1/decisions", 200),
    ],
)
def test_roles(app: Flask, tokens: dict[str, str], role: str, method: str, path: str,
               expected: int) -> None:
    body = {"decision": "accepted"} if "decision" in path else {"text": "All good."}
    r = app.test_client().open(path, method=method, headers=bearer(tokens[role]),
                               json=body if method == "POST" else None)
    if expected >= 400:
        assert_json_error(r, expected)
    else:
        assert r.status_code == expected, r.get_json()


def test_session_posts_need_the_csrf_header_token_posts_do_not(
    app: Flask, tokens: dict[str, str]
) -> None:
    client, csrf = signed_in(app, "incident_manager")
    r = client.post("/api/v1/lint", json={"text": "Fine."})
    assert_json_error(r, 400)
    assert "CSRF" in r.get_json()["error"]
    assert client.post("/api/v1/lint", json={"text": "Fine."},
                       headers={"X-CSRFToken": csrf}).status_code == 200
    r = app.test_client().post("/api/v1/lint", json={"text": "Fine."},
                               headers=bearer(tokens["engineer"]))
    assert r.status_code == 200


# --- incidents and findings -------------------------------------------------------------


def test_incidents_filters_and_pages(app: Flask, tokens: dict[str, str]) -> None:
    client = app.test_client()
    h = bearer(tokens["engineer"])
    body = client.get("/api/v1/incidents", headers=h).get_json()
    assert [i["id"] for i in body["items"]] == [GH_ID, JIRA_ID]  # newest closure first
    assert body["items"][0]["links"]["findings"] == api_path(GH_ID, "/findings")
    for query, ids in [
        ("status=missing", [JIRA_ID]),
        ("tracker=github", [GH_ID]),
        ("project=OPS", [JIRA_ID]),
        ("team=payments", [GH_ID]),
        ("status=ok", []),
    ]:
        got = client.get(f"/api/v1/incidents?{query}", headers=h).get_json()
        assert [i["id"] for i in got["items"]] == ids, query
    page2 = client.get("/api/v1/incidents?per_page=1&page=2", headers=h).get_json()
    assert (page2["page"], page2["pages"], page2["total"]) == (2, 2, 2)
    assert [i["id"] for i in page2["items"]] == [JIRA_ID]
    for bad in ("status=bogus", "tracker=gitlab", "page=0", "per_page=1000", "page=x"):
        assert_json_error(client.get(f"/api/v1/incidents?{bad}", headers=h), 400)


def test_incident_detail_and_findings(app: Flask, tokens: dict[str, str]) -> None:
    client = app.test_client()
    h = bearer(tokens["engineer"])
    detail = client.get(api_path(GH_ID), headers=h).get_json()
    assert detail["id"] == GH_ID and detail["status"] == "needs-review"
    assert detail["postmortems"][0]["title"] == "Checkout errors review"
    (analysis,) = detail["analyses"]
    assert analysis["pack"] == {"name": "default", "version": "2026.01.01-1"}
    assert analysis["findings"] == 2
    found = client.get(api_path(GH_ID, "/findings"), headers=h).get_json()
    assert [f["text"] for f in found["items"]] == ["forgot", "forget"]
    assert found["items"][0]["pack"]["version"] == "2026.01.01-1"
    jira = client.get(api_path(JIRA_ID), headers=h).get_json()
    assert jira["postmortems"] == [] and jira["analyses"] == []
    assert_json_error(client.get(api_path("jira:https://x.example:NO:NO-1"), headers=h), 404)
    assert_json_error(
        client.get(api_path("jira:https://x.example:NO:NO-1", "/findings"), headers=h), 404)


def test_the_api_shows_the_analyses_the_dashboard_shows(
    env: ServiceEnv, app: Flask, tokens: dict[str, str]
) -> None:
    # Issue 12: the API took each postmortem's newest analysis ever, the dashboard the
    # latest check's; after a check that read nothing ("missing": the link was removed)
    # the API still listed the old flags.
    with session_scope(env.service.sessions) as db:
        incident = q.upsert_incident(
            db, "github", GH_SITE, "acme/payments", "12", title="Checkout errors",
            state="closed", verdict="missing", last_checked_at=datetime.now(UTC),
        )
        shown = [a.id for a in q.current_analyses(db, incident)]
    h = bearer(tokens["engineer"])
    detail = app.test_client().get(api_path(GH_ID), headers=h).get_json()
    assert [a["id"] for a in detail["analyses"]] == shown == []
    found = app.test_client().get(api_path(GH_ID, "/findings"), headers=h).get_json()
    assert found["items"] == []


def test_decisions_queue_a_recheck_and_are_listed(
    env: ServiceEnv, app: Flask, tokens: dict[str, str]
) -> None:
    client = app.test_client()
    h = bearer(tokens["incident_manager"])
    first, second = finding_ids(env)
    r = client.post(f"/api/v1/findings/{first}/decision", headers=h,
                    json={"decision": "accepted"})
    assert r.status_code == 200
    body = r.get_json()
    assert body["finding"]["decision"] == "accepted"
    assert body["finding"]["decided_by"] == "incident_manager"
    with session_scope(env.service.sessions) as db:
        job = db.get(Job, body["recheck_job"])
        assert job.kind == "check" and job.incident_id == GH_ID
        assert job.payload == {"tracker": "github", "site": GH_SITE, "project": "acme/payments",
                               "key": "12", "reason": "decision"}
    r = client.post(f"/api/v1/findings/{second}/decision", headers=h,
                    json={"decision": "false-positive"})
    assert_json_error(r, 400)
    assert "reason" in r.get_json()["error"]
    r = client.post(f"/api/v1/findings/{second}/decision", headers=h,
                    json={"decision": "false-positive", "reason": "quoting a chat log"})
    assert r.status_code == 200
    r = client.post(f"/api/v1/findings/{first}/decision", headers=h, json={"decision": None})
    assert r.status_code == 200 and r.get_json()["finding"]["decision"] is None
    listed = client.get("/api/v1/decisions", headers=h).get_json()["items"]
    assert [(d["decision"], d["finding_id"]) for d in listed] == [
        (None, first), ("false-positive", second), ("accepted", first)]
    assert listed[1]["reason"] == "quoting a chat log"
    assert listed[1]["incident_id"] == GH_ID and listed[1]["rule"] == "api.forgot"
    page = client.get("/api/v1/decisions?limit=2", headers=h).get_json()
    assert len(page["items"]) == 2 and page["next_before"] == page["items"][-1]["id"]
    rest = client.get(f"/api/v1/decisions?before={page['next_before']}", headers=h).get_json()
    assert [d["decision"] for d in rest["items"]] == ["accepted"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"decision": "maybe"}, 400),
        ({"decision": "false-positive", "reason": "   "}, 400),
        ({"decision": "accepted", "reason": 5}, 400),
        ("not an object", 400),
    ],
)
def test_bad_decisions_are_400_json(
    env: ServiceEnv, app: Flask, tokens: dict[str, str], body: Any, status: int
) -> None:
    first = finding_ids(env)[0]
    r = app.test_client().post(f"/api/v1/findings/{first}/decision", json=body,
                               headers=bearer(tokens["incident_manager"]))
    assert_json_error(r, status)


def test_decision_on_unknown_finding_and_broken_json(app: Flask, tokens: dict[str, str]) -> None:
    client = app.test_client()
    h = bearer(tokens["admin"])
    assert_json_error(client.post("/api/v1/findings/999/decision", headers=h,
                                  json={"decision": "accepted"}), 404)
    r = client.post("/api/v1/findings/1/decision", headers={**h, "Content-Type":
                    "application/json"}, data="{not json")
    assert_json_error(r, 400)


# --- rule packs -------------------------------------------------------------------------


def test_rule_packs_history_and_active(env: ServiceEnv, app: Flask, tokens: dict[str, str]):
    client = app.test_client()
    h = bearer(tokens["admin"])
    active = client.get("/api/v1/rule-packs/active", headers=h).get_json()
    assert active["source"] == "shipped" and active["id"] is None
    assert any(r["id"] == "blame.counterfactual-modal" for r in active["rules"])
    assert client.get("/api/v1/rule-packs", headers=h).get_json()["items"] == []
    with session_scope(env.service.sessions) as db:
        row = tuning.publish(db, packs.DEFAULT_NAME, PACK, "admin", "ours")
    history = client.get("/api/v1/rule-packs", headers=h).get_json()
    assert history["active_id"] == row.id
    assert [(v["version"], v["active"], v["created_by"]) for v in history["items"]] == [
        (row.version, True, "admin")]
    active = client.get("/api/v1/rule-packs/active", headers=h).get_json()
    assert (active["source"], active["id"], active["version"]) == ("published", row.id,
                                                                   row.version)
    assert active["text"] == PACK and [r["id"] for r in active["rules"]] == ["api.forgot"]


# --- lint -------------------------------------------------------------------------------


def test_lint_returns_findings_with_offsets(app: Flask, tokens: dict[str, str]) -> None:
    text = "# Review\n\nDana should have checked the replica lag before failing over."
    r = app.test_client().post("/api/v1/lint", headers=bearer(tokens["engineer"]),
                               json={"text": text, "people": ["Dana"]})
    assert r.status_code == 200
    body = r.get_json()
    (file,) = body["files"]
    rules = {f["rule"] for f in file["findings"]}
    # Blame and no action items: one finding asks for a change to the system (it stands in
    # for the missing-section one, so the question is asked once).
    assert "blame.counterfactual-modal" in rules and "actions.systems-action" in rules
    flag = next(f for f in file["findings"] if f["rule"] == "blame.counterfactual-modal")
    assert text[flag["start"]:flag["end"]] == flag["text"]
    assert body["summary"]["pack"].startswith("default@")
    # Without the action-item checks, and with a draft pack given as YAML (admins only).
    r = app.test_client().post("/api/v1/lint", headers=bearer(tokens["admin"]), json={
        "text": "Mira forgot the index rebuild.", "pack": PACK, "actions": False})
    found = r.get_json()["files"][0]["findings"]
    assert [(f["rule"], f["text"]) for f in found] == [("api.forgot", "forgot")]
    assert r.get_json()["summary"]["pack"] == "default@api-1"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({}, 400, "text"),
        ({"text": 5}, 400, "text"),
        ({"text": "x", "format": "docx"}, 400, "format"),
        ({"text": "x", "people": "Dana"}, 400, "people"),
        ({"text": "x", "actions": "no"}, 400, "actions"),
        ({"text": "x", "pack": "rules: [{id: api.x, severity: loud}]"}, 403, "admin"),
        ({"text": "x", "pack_version": 7}, 400, "pack_version"),
        ({"text": "{not adf", "format": "adf"}, 400, "adf"),
        ({"text": "a" * (MAX_LINT_CHARS + 1)}, 413, "characters"),
    ],
)
def test_lint_errors(app: Flask, tokens: dict[str, str], body: dict, status: int,
                     words: str) -> None:
    r = app.test_client().post("/api/v1/lint", headers=bearer(tokens["engineer"]), json=body)
    assert_json_error(r, status)
    assert words in r.get_json()["error"]


# Issue 9, High 3 and Medium 4: an engineer's pack froze the web process; now only admins
# (who can publish anyway) send pack text, and theirs passes the same checks.
@pytest.mark.parametrize("role", ["engineer", "incident_manager"])
def test_below_admin_a_pack_is_refused_before_anything_runs(
    app: Flask, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    import web.api

    ran: list[str] = []
    monkeypatch.setattr(app.extensions["pmguard"], "analyse",
                        lambda *_a, **_k: ran.append("analyse"))
    monkeypatch.setattr(web.api, "draft_pack", lambda *_a, **_k: ran.append("parse"))
    for pack in (PACK, wide_pack(), "not even YAML: ["):
        r = app.test_client().post("/api/v1/lint", headers=bearer(tokens[role]),
                                   json={"text": "Mira forgot it.", "pack": pack})
        assert_json_error(r, 403)
        assert "admin" in r.get_json()["error"] and "pack_version" in r.get_json()["error"]
    assert ran == []


@pytest.mark.parametrize(
    ("pack", "words"),
    [
        (billion_laughs("definitions") + "rules: []\n", "YAML aliases in pack stand for over"),
        (wide_pack(), "YAML aliases in pack stand for over"),
        (PACK.replace("{IN: [forgot, forget]}", '{REGEX: "^((ab)+)+$"}'), "can run away"),
        (PACK.replace("{IN: [forgot, forget]}", '{REGEX: "\\\\w*\\\\w*\\\\w*z"}'),
         "can run away"),
    ],
    ids=["billion-laughs", "wide", "nested", "overlapping"],
)
def test_an_admin_pack_is_refused_fast_when_it_could_run_away(
    app: Flask, tokens: dict[str, str], pack: str, words: str
) -> None:
    started = time.perf_counter()
    r = app.test_client().post("/api/v1/lint", headers=bearer(tokens["admin"]),
                               json={"text": "Mira forgot it.", "pack": pack})
    assert time.perf_counter() - started < 1.0
    assert_json_error(r, 400)
    assert words in r.get_json()["error"]


def test_lint_with_a_published_version_named(env: ServiceEnv, app: Flask,
                                             tokens: dict[str, str]) -> None:
    with session_scope(env.service.sessions) as db:
        version = tuning.publish(db, packs.DEFAULT_NAME, PACK, "admin", "ours").version
    newer = PACK.replace("easy to miss?", "easy to skip?")
    with session_scope(env.service.sessions) as db:  # the named version is not the one in force
        assert tuning.publish(db, packs.DEFAULT_NAME, newer, "admin", "newer").version != version
    client = app.test_client()
    r = client.post("/api/v1/lint", headers=bearer(tokens["engineer"]), json={
        "text": "Mira forgot the index rebuild.", "pack_version": version, "actions": False})
    assert r.status_code == 200, r.get_data(as_text=True)
    found = r.get_json()["files"][0]["findings"]
    assert [f["rule"] for f in found] == ["api.forgot"]
    assert r.get_json()["summary"]["pack"] == f"default@{version}"
    r = client.post("/api/v1/lint", headers=bearer(tokens["engineer"]),
                    json={"text": "x", "pack_version": "1999.01.01-9"})
    assert_json_error(r, 404)
    assert "1999.01.01-9" in r.get_json()["error"]
    r = client.post("/api/v1/lint", headers=bearer(tokens["admin"]),
                    json={"text": "x", "pack_version": version, "pack": PACK})
    assert_json_error(r, 400)


def test_unknown_paths_and_methods_answer_json(app: Flask, tokens: dict[str, str]) -> None:
    client = app.test_client()
    h = bearer(tokens["engineer"])
    assert_json_error(client.get("/api/v1/nothing/here", headers=h), 404)
    r = client.get("/api/v1/lint", headers=h)
    assert_json_error(r, 405)
    assert r.headers["Allow"] == "POST"
    assert_json_error(client.delete("/api/v1/incidents", headers=h), 405)


def test_a_crash_is_a_json_500_without_internals(
    app: Flask, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:

    def boom(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.extensions["pmguard"], "analyse", boom)
    r = app.test_client().post("/api/v1/lint", headers=bearer(tokens["engineer"]),
                               json={"text": "x"})
    assert_json_error(r, 500)
    assert "secret internals" not in r.get_data(as_text=True)


def test_an_unavailable_database_is_a_json_503(
    app: Flask, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:

    def locked(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    monkeypatch.setattr(app.extensions["pmguard"], "analyse", locked)
    r = app.test_client().post("/api/v1/lint", headers=bearer(tokens["engineer"]),
                               json={"text": "x"})
    assert_json_error(r, 503)
    assert r.headers["Retry-After"] == "5" and "SELECT" not in r.get_data(as_text=True)


# --- OpenAPI conformance ----------------------------------------------------------------

REGISTRY = Registry().with_resource(
    "urn:pmguard:openapi", Resource.from_contents(OPENAPI, default_specification=DRAFT202012)
)


def validate_against(body: Any, schema: dict) -> None:
    """Validate `body` against a schema from the document, its $refs resolved in it."""
    wrapper = {"$schema": "https://json-schema.org/draft/2020-12/schema",
               "$id": "urn:pmguard:check", **_rebase(schema)}
    Draft202012Validator(wrapper, registry=REGISTRY).validate(body)


def _rebase(schema: Any) -> Any:
    # "#/components/..." inside the document -> an absolute reference to the document.
    if isinstance(schema, dict):
        return {k: ("urn:pmguard:openapi" + v if k == "$ref" and v.startswith("#") else
                    _rebase(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


Sample = Callable[[ServiceEnv], tuple[str, dict]]  # -> (path with parameters filled, kwargs)


def _finding(env: ServiceEnv) -> int:
    return finding_ids(env)[0]


# Per operation and documented status: a request that should produce it. 401 is checked for
# every operation without credentials, 403 with the engineer's token where documented.
SAMPLES: dict[str, dict[str, Sample]] = {
    "listIncidents": {
        "200": lambda env: ("/api/v1/incidents?status=needs-review&per_page=5", {}),
        "400": lambda env: ("/api/v1/incidents?per_page=0", {}),
    },
    "getIncident": {
        "200": lambda env: (api_path(GH_ID), {}),
        "404": lambda env: (api_path("github:https://x:none/none#1"), {}),
    },
    "listFindings": {
        "200": lambda env: (api_path(GH_ID, "/findings"), {}),
        "404": lambda env: (api_path(JIRA_ID + "0", "/findings"), {}),
    },
    "decideFinding": {
        "200": lambda env: (f"/api/v1/findings/{_finding(env)}/decision",
                            {"json": {"decision": "false-positive", "reason": "a quote"}}),
        "400": lambda env: (f"/api/v1/findings/{_finding(env)}/decision",
                            {"json": {"decision": "false-positive"}}),
        "404": lambda env: ("/api/v1/findings/424242/decision", {"json": {"decision": None}}),
    },
    "listDecisions": {
        "200": lambda env: ("/api/v1/decisions?limit=10", {}),
        "400": lambda env: ("/api/v1/decisions?limit=0", {}),
    },
    "listRulePacks": {"200": lambda env: ("/api/v1/rule-packs", {})},
    "getActiveRulePack": {"200": lambda env: ("/api/v1/rule-packs/active", {})},
    "lint": {
        "200": lambda env: ("/api/v1/lint", {"json": {"text": "Mira forgot it.",
                                                      "format": "markdown"}}),
        "400": lambda env: ("/api/v1/lint", {"json": {"format": "markdown"}}),
        "404": lambda env: ("/api/v1/lint", {"json": {"text": "x", "pack_version": "0.0"}}),
        "413": lambda env: ("/api/v1/lint", {"json": {"text": "b" * (MAX_LINT_CHARS + 1)}}),
        "422": lambda env: _over_budget(env),
        # Refused for what it asks rather than where: sent by an engineer (below).
        "403": lambda env: ("/api/v1/lint", {"json": {"text": "x", "pack": PACK}}),
    },
    "getOpenApi": {"200": lambda env: ("/api/v1/openapi.json", {})},
}


def _over_budget(env: ServiceEnv) -> tuple[str, dict]:
    # A budget no analysis of a few thousand words meets; the stopped process is replaced.
    env.service.settings = replace(env.service.settings, analysis_timeout=0.01)
    return "/api/v1/lint", {"json": {"text": "Mira forgot the index rebuild. " * 400}}


def operations() -> list[tuple[str, str, dict]]:
    return [
        (path, method, op)
        for path, item in OPENAPI["paths"].items()
        for method, op in item.items()
    ]


def test_the_document_is_openapi_3_1_with_unique_operation_ids() -> None:
    assert OPENAPI["openapi"].startswith("3.1")
    ids = [op["operationId"] for _p, _m, op in operations()]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(SAMPLES), "every operation needs samples in this test"


def test_every_api_route_is_documented(app: Flask) -> None:
    documented = {(path, method.upper()) for path, method, _op in operations()}
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.endpoint == "api.unknown":
            continue  # api.unknown: the catch-all that answers 404/405 as JSON
        path = re.sub(r"<(?:[a-z]+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method))
    assert served == documented


def test_served_document_is_the_module_document(app: Flask, tokens: dict[str, str]) -> None:
    r = app.test_client().get("/api/v1/openapi.json", headers=bearer(tokens["engineer"]))
    assert r.get_json() == OPENAPI


@pytest.mark.parametrize(
    ("path", "method", "op"), operations(), ids=[op["operationId"] for *_x, op in operations()]
)
def test_operation_conforms(env: ServiceEnv, app: Flask, tokens: dict[str, str], path: str,
                            method: str, op: dict) -> None:
    responses = op["responses"]
    samples = SAMPLES[op["operationId"]]
    # Every documented status has a sample (401 and 403 are produced below, 403 from its
    # own sample when the route is open to engineers but what is asked is not).
    assert set(responses) - {"401", "403"} == set(samples) - {"403"}, op["operationId"]
    needs = {"getIncident": "engineer", "decideFinding": "incident_manager",
             "listRulePacks": "admin", "getActiveRulePack": "admin"}
    token = tokens["admin"]
    for status, sample in samples.items():
        if status == "403":
            continue
        url, kwargs = sample(env)
        # The sample's URL is the documented path with its parameters filled in.
        pattern = re.sub(r"\\{\w+\\}", ".+", re.escape("/api/v1" + path))
        assert re.fullmatch(pattern, url.split("?")[0]), (url, path)
        r = app.test_client().open(url, method=method.upper(), headers=bearer(token), **kwargs)
        assert str(r.status_code) == status, (op["operationId"], r.get_data(as_text=True)[:300])
        schema = responses[status]["content"]["application/json"]["schema"]
        validate_against(r.get_json(), schema)
    url, kwargs = samples["200"](env)
    client = app.test_client()
    # Anonymous, with a CSRF token so the answer is about authentication, not the form.
    login = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', login).group(1)
    anonymous = client.open(url, method=method.upper(), headers={"X-CSRFToken": csrf}, **kwargs)
    assert "401" in responses and anonymous.status_code == 401
    validate_against(anonymous.get_json(), responses["401"]["content"]["application/json"]
                     ["schema"])
    if "403" in responses:
        if "403" in samples:
            url, kwargs = samples["403"](env)
        else:
            assert needs.get(op["operationId"]) in ("incident_manager", "admin")
        refused = app.test_client().open(url, method=method.upper(),
                                         headers=bearer(tokens["engineer"]), **kwargs)
        assert refused.status_code == 403
        validate_against(refused.get_json(), responses["403"]["content"]["application/json"]
                         ["schema"])
