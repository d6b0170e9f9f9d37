"""Every real webhook payload in ../shared/fixtures goes through the endpoints, signed as
its sender signs it: each is answered 200 (ping), 202 (enqueued) or 204 (nothing to do),
never an error. Skipped where ../shared is absent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.service_env import ServiceEnv, make_settings

SHARED = Path(os.environ.get("PMGUARD_SHARED") or Path(__file__).resolve().parents[2] / "shared")
FIXTURES = SHARED / "fixtures"
if not FIXTURES.is_dir():
    pytest.skip(f"no shared fixtures at {FIXTURES}", allow_module_level=True)

GITHUB = sorted((FIXTURES / "github").glob("*.json"))
JIRA = sorted((FIXTURES / "jira").glob("*.json"))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conformance")
    e = ServiceEnv(
        make_settings(tmp, f"sqlite:///{tmp / 'db.sqlite'}", "", github_token="t",
                      jira_url="https://acme.atlassian.net", jira_email="a@b.c",
                      jira_token="t"),
        "pmguard-conformance",
    )
    yield e
    e.stop()


@pytest.mark.parametrize("path", GITHUB, ids=[p.name for p in GITHUB])
def test_github_payload(env, path: Path) -> None:
    event = path.name.split(".")[0]
    payload = json.loads(path.read_text(encoding="utf-8"))
    response = env.github(event, payload, delivery=f"fixture-{path.name}")
    assert response.status_code in (200, 202, 204), response.get_data(as_text=True)
    if event == "issues" and payload.get("action") == "closed":
        labels = {label["name"] for label in payload["issue"].get("labels", [])}
        assert response.status_code == (202 if "incident" in labels else 204)


@pytest.mark.parametrize("path", JIRA, ids=[p.name for p in JIRA])
def test_jira_payload(env, path: Path) -> None:
    payload = json.loads(path.read_text(encoding="utf-8"))
    response = env.jira(payload, delivery=f"fixture-{path.name}")
    assert response.status_code in (202, 204), response.get_data(as_text=True)
