"""Real GitHub payloads and responses from ../shared/fixtures/github/ (when present).

1. Every recorded webhook body goes through `parse_event` without raising and maps to the
   expected kind.
2. The fake's JSON has every top-level key the recorded response of the same endpoint has,
   so the fake cannot drift from GitHub's shape unnoticed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connector.base import CLOSED, INCIDENT_EDITED, RECHECK, REOPENED
from connector.github import parse_event
from tests.fakes.github import FakeGitHub

SHARED = Path(os.environ.get("PMGUARD_SHARED") or Path(__file__).resolve().parents[2] / "shared")
FIXTURES = SHARED / "fixtures" / "github"
API = FIXTURES / "api"
SITE = "https://api.github.com"

pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason=f"shared GitHub fixtures not found at {FIXTURES} (set PMGUARD_SHARED)",
)

DELIVERIES = sorted(FIXTURES.glob("*.json")) if FIXTURES.is_dir() else []


def expected_kind(name: str, payload: dict) -> str | None:
    """What the service should make of a recorded delivery, judged from the file's name
    and the issue's state (the parse_event rules, restated independently)."""
    event, action = name.split(".")[:2]
    issue = payload.get("issue") or {}
    closed = issue.get("state") == "closed"
    if event == "issues":
        changes = payload.get("changes")
        return {
            "closed": CLOSED,
            "reopened": REOPENED,
            "edited": INCIDENT_EDITED if not changes or "body" in changes else None,
            "labeled": INCIDENT_EDITED if closed else None,
            "unlabeled": INCIDENT_EDITED if closed else None,
        }.get(action)
    if event == "issue_comment" and action in ("created", "edited"):
        if "/pmguard recheck" in (payload.get("comment") or {}).get("body", ""):
            return RECHECK
        return INCIDENT_EDITED if closed else None
    return None  # ping, installation, ...


def test_fixture_folder_has_deliveries() -> None:
    names = {p.name for p in DELIVERIES}
    assert {"issues.closed.json", "issues.reopened.json", "ping.json"} <= names


@pytest.mark.parametrize("path", DELIVERIES, ids=[p.name for p in DELIVERIES])
def test_recorded_delivery_maps_to_the_expected_kind(path: Path) -> None:
    payload = json.loads(path.read_text())
    event_name = path.name.split(".")[0]
    event = parse_event(event_name, payload, site=SITE, bot_login="pmguard[bot]")
    want = expected_kind(path.name, payload)
    assert (event.kind if event else None) == want
    if event is not None:
        repo = payload["repository"]["full_name"]
        assert event.ref.project == repo and event.ref.key == str(payload["issue"]["number"])
        assert event.ref.site == SITE
        assert event.actor == payload["sender"]["login"]
        assert event.labels == tuple(label["name"] for label in payload["issue"]["labels"])
        assert event.installation_id == (payload.get("installation") or {}).get("id")


def test_recorded_closed_delivery_in_detail() -> None:
    payload = json.loads((FIXTURES / "issues.closed.json").read_text())
    event = parse_event("issues", payload, site=SITE)
    assert event is not None and event.kind == CLOSED
    assert event.state_reason == "completed" and event.installation_id == 27216354


# ---- the fake's shapes against recorded responses -----------------------------------------

# Keys GitHub sends only in some contexts (an org-owned repository, a fork, a template).
OPTIONAL_REPO_KEYS = {"organization", "parent", "source", "template_repository"}


@pytest.fixture(scope="module")
def served() -> dict[str, object]:
    """One request per endpoint against a seeded fake, as PyGithub would make them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with FakeGitHub() as fake:
        fake.add_repo("acme/web")
        n = fake.add_issue("acme/web", "Down", "body", labels=["incident"], assignees=["bob"])
        fake.close_issue("acme/web", n)
        cid = fake.add_comment("acme/web", n, "hello", user="bob")
        fake.add_file("acme/web", "docs/pm.md", "# PM\n")
        fake.register_app(1, public)
        fake.add_installation(5, ["acme/web"])
        token = {"Authorization": f"token {fake.token}"}
        base = f"{fake.url}/repos/acme/web"

        def get(url: str, headers: dict = token) -> object:
            resp = requests.get(url, headers=headers, timeout=5)
            assert resp.ok, (url, resp.status_code, resp.text)
            return resp.json()

        now = int(time.time())
        bearer = jwt.encode({"iat": now - 60, "exp": now + 300, "iss": "1"}, key, "RS256")
        app = {"Authorization": f"Bearer {bearer}"}
        tokens = requests.post(
            f"{fake.url}/app/installations/5/access_tokens", headers=app, json={}
        )
        assert tokens.status_code == 201
        labels = requests.post(f"{base}/issues/{n}/labels", headers=token, json=["sev1"])
        return {
            "GET_repos_owner_repo": get(base),
            "GET_repos_owner_repo_issues_number": get(f"{base}/issues/{n}"),
            "GET_repos_owner_repo_issues_comments_id": get(f"{base}/issues/comments/{cid}"),
            "GET_repos_owner_repo_issues_number_comments": get(f"{base}/issues/{n}/comments"),
            "GET_repos_owner_repo_contents_path.file": get(f"{base}/contents/docs/pm.md"),
            "GET_repos_owner_repo_contents_path.dir": get(f"{base}/contents/docs"),
            "GET_repos_owner_repo_installation": get(f"{base}/installation", app),
            "GET_app_installations": get(f"{fake.url}/app/installations", app),
            "POST_app_installations_id_access_tokens": tokens.json(),
            "POST_repos_owner_repo_issues_number_labels": labels.json(),
            "GET_rate_limit": get(f"{fake.url}/rate_limit"),
        }


def recorded(stem: str) -> object | None:
    """The most faithful recorded sample for an endpoint: a live recording, else GitHub's
    own OpenAPI example (2012-era recordings predate today's keys)."""
    for origin in ("recorded", "openapi-example"):
        path = API / f"{stem}.{origin}.json"
        if path.exists():
            return json.loads(path.read_text())
    return None


def top_keys(sample: object) -> set[str]:
    item = sample[0] if isinstance(sample, list) else sample
    assert isinstance(item, dict)
    return set(item)


@pytest.mark.parametrize(
    "stem",
    [
        "GET_repos_owner_repo",
        "GET_repos_owner_repo_issues_number",
        "GET_repos_owner_repo_issues_comments_id",
        "GET_repos_owner_repo_issues_number_comments",
        "GET_repos_owner_repo_contents_path.file",
        "GET_repos_owner_repo_contents_path.dir",
        "GET_repos_owner_repo_installation",
        "GET_app_installations",
        "POST_app_installations_id_access_tokens",
        "POST_repos_owner_repo_issues_number_labels",
        "GET_rate_limit",
    ],
)
def test_fake_has_every_recorded_top_level_key(stem: str, served: dict) -> None:
    sample = recorded(stem)
    if sample is None:
        pytest.skip(f"no recorded sample for {stem}")
    want = top_keys(sample)
    if stem == "GET_repos_owner_repo":
        want -= OPTIONAL_REPO_KEYS
    missing = want - top_keys(served[stem])
    assert not missing, f"fake {stem} lacks {sorted(missing)}"
    assert isinstance(served[stem], list) == isinstance(sample, list)


def test_fake_timeline_cross_reference_matches_the_recorded_shape() -> None:
    path = API / "GET_repos_owner_repo_issues_number_timeline.recorded.json"
    if not path.exists():
        pytest.skip("no recorded timeline")
    real = next(e for e in json.loads(path.read_text()) if e["event"] == "cross-referenced")
    with FakeGitHub() as fake:
        fake.add_repo("acme/web")
        target = fake.add_issue("acme/web", "Incident")
        source = fake.add_issue("acme/web", "PM", labels=["postmortem"])
        fake.cross_reference("acme/web", source, "acme/web", target)
        events = requests.get(
            f"{fake.url}/repos/acme/web/issues/{target}/timeline",
            headers={"Authorization": f"token {fake.token}"},
            timeout=5,
        ).json()
    ours = next(e for e in events if e["event"] == "cross-referenced")
    assert set(real) <= set(ours)
    assert ours["source"]["type"] == real["source"]["type"] == "issue"
    # The source issue is a plain issue here, so GitHub would not send pull_request/draft.
    want = set(real["source"]["issue"]) - {"pull_request", "draft"}
    assert want <= set(ours["source"]["issue"])
