"""Real Jira payloads from ../shared/fixtures/jira (Cloud and Data Center) through
parse_event, and the fake Jira's issue JSON against recorded GET issue responses.

The shared folder sits next to the project (or at $PMGUARD_SHARED); without it this module is
skipped, since the recordings are not ours to copy into the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from connector.base import CLOSED, INCIDENT_EDITED, REOPENED
from connector.jira import parse_event
from tests.fakes.jira import FakeJira

SHARED = Path(os.environ.get("PMGUARD_SHARED") or Path(__file__).resolve().parents[2] / "shared")
FIXTURES = SHARED / "fixtures" / "jira"

pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason=f"shared Jira fixtures not found at {FIXTURES} (set PMGUARD_SHARED)",
)

SITE = "https://jira.example.test"
ANY = {None, CLOSED, REOPENED, INCIDENT_EDITED, "postmortem_edited", "recheck_requested"}


def _expected(name: str) -> set[str | None]:
    """What a payload must give, from its file name (SOURCES.md describes each one)."""
    if "deleted" in name:
        return {None}
    if name.startswith("issuelink"):
        return {INCIDENT_EDITED}
    if "reopened" in name:
        return {REOPENED}
    if "resolved" in name or "closed" in name:
        return {CLOSED}
    if "comment" in name:  # a comment on an open issue, or one on a closed incident
        return {INCIDENT_EDITED, None}
    if "transition" in name or "labels" in name:  # started work / relabelled: not a close
        return {None}
    return ANY  # a new file: it must at least parse


def _payloads() -> list[Path]:
    return sorted(FIXTURES.glob("*.json")) if FIXTURES.is_dir() else []


@pytest.mark.parametrize("path", _payloads(), ids=lambda p: p.name)
def test_payload_gives_the_expected_kind(path: Path):
    payload = json.loads(path.read_text(encoding="utf-8"))
    event = parse_event(payload, site=SITE)
    kind = event.kind if event else None
    assert kind in _expected(path.name), f"{path.name}: got {kind}"
    if kind in (CLOSED, REOPENED):
        issue = payload["issue"]
        assert event.ref.key == issue["key"]
        assert event.ref.project == issue["fields"]["project"]["key"]
        assert event.ref.site == SITE
        user = payload["user"]
        assert event.actor == (user.get("accountId") or user.get("name"))
        assert event.issue_type == issue["fields"]["issuetype"]["name"]


def test_every_payload_was_seen():
    assert _payloads(), f"no payloads in {FIXTURES}"


def test_bot_comment_in_real_payloads_is_ignored():
    for name in ("comment_created.json", "comment_created.server.json"):
        path = FIXTURES / name
        if not path.exists():
            continue
        payload = json.loads(path.read_text(encoding="utf-8"))
        author = payload["comment"]["author"]
        bot = author.get("accountId") or author["name"]
        payload["comment"]["body"] = "/pmguard recheck"
        assert parse_event(payload, site=SITE) is not None
        assert parse_event(payload, site=SITE, bot_account=bot) is None


def _recorded_issues() -> list[Path]:
    api = FIXTURES / "api"
    return sorted(api.glob("GET_issue.*recorded*.json")) if api.is_dir() else []


@pytest.mark.parametrize("deployment", ["Cloud", "Server"])
def test_fake_issue_json_has_the_recorded_keys(deployment: str):
    recorded = _recorded_issues()
    if not recorded:
        pytest.skip(f"no recorded GET issue responses under {FIXTURES / 'api'}")
    with FakeJira(deployment) as fake:
        key = fake.add_issue("OPS", "Outage", "text", status="Done")
        served = fake.issue(key)
    for path in recorded:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert set(data) <= set(served), f"{path.name}: top-level keys missing"
        # Custom field ids are per site; every other field must be there.
        wanted = {k for k in data["fields"] if not k.startswith("customfield_")}
        missing = wanted - set(served["fields"])
        assert not missing, f"{path.name}: fields missing from the fake: {sorted(missing)}"
        assert str(served["self"]).endswith(f"/rest/api/2/issue/{served['id']}")


def test_fake_user_and_link_shapes_match_recordings():
    path = FIXTURES / "api" / "GET_issue.with-issuelinks.recorded.json"
    if not path.exists():
        pytest.skip(f"{path.name} not found")
    recorded = json.loads(path.read_text(encoding="utf-8"))["fields"]
    with FakeJira("Cloud") as fake:
        a = fake.add_issue("OPS", "Outage", "x")
        b = fake.add_issue("OPS", "Follow-up", "", issue_type="Task")
        fake.link(a, b, "Blocks")
        served = fake.issue(a)["fields"]
    link, served_link = recorded["issuelinks"][0], served["issuelinks"][0]
    assert set(link) <= set(served_link)
    assert set(link["type"]) <= set(served_link["type"])
    assert set(link["outwardIssue"]) <= set(served_link["outwardIssue"])
    assert set(link["outwardIssue"]["fields"]) <= set(served_link["outwardIssue"]["fields"])
    assert set(recorded["status"]["statusCategory"]) <= set(served["status"]["statusCategory"])
    # Cloud users carry accountId and no name/key (GDPR mode); avatarUrls and timeZone stay.
    cloud_user_keys = {k for k in recorded["reporter"] if k not in ("name", "key", "emailAddress")}
    assert cloud_user_keys <= set(served["reporter"])
