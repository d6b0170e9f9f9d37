"""An incident manager reviews a flagged postmortem in a real browser.

Playwright for Python drives Debian's Chromium (/usr/bin/chromium; never `playwright
install`) against the real app served on 127.0.0.1 with a huey worker, checking against the
fake GitHub. Screenshots of the queue and the incident page go to
test-artifacts/screenshots/. Without Chromium or Playwright the module is skipped, unless
CI is set: then it fails, so a CI machine cannot pass by not running it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import argon2
import pytest

from check.comment import GITHUB_MARKER
from connector.base import IncidentRef
from store import queries
from store import users as store_users
from store.db import session_scope
from tests.fakes.github import FakeGitHub, fake_github  # noqa: F401
from tests.fakes.server import LocalServer
from tests.service_env import ServiceEnv, make_settings, unavailable, wait_until
from tests.web_helpers import csp_fixture, watch_csp

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery"
REPO = "acme/ops"
TIMEOUT_MS = 10_000

BLAME_PM = """# Postmortem: checkout outage

## What happened
Ravi forgot to run the migration before the deploy. The on-call engineer should have
checked the replica lag. <script>document.title = "pwned"</script>

## Action items
- Make the deploy run pending migrations automatically (#90, owner @sre)
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is absent (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class AppServer(LocalServer):
    """The real Flask app on 127.0.0.1, threaded, as the fake trackers are served."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app
        self.url = ""

    def started(self, root: str) -> None:
        self.url = root


@pytest.fixture
def served(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> Iterator[tuple[ServiceEnv, str]]:
    # Sign-ins need not cost production argon2 time here.
    cheap = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(store_users, "PASSWORD_HASHER", cheap)
    settings = make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "", github_url=fake_github.url,
        github_token=fake_github.token, bot_login=fake_github.user,
    )
    env = ServiceEnv(settings, f"pmguard-browser-{uuid.uuid4().hex[:8]}")
    env.fake = fake_github
    fake_github.add_repo(REPO)
    with session_scope(env.service.sessions) as db:
        store_users.create_user(db, "mia", PASSWORD, "incident_manager")
        store_users.create_user(db, "eli", PASSWORD, "engineer")
    env.start_worker()
    server = AppServer(env.app).start()
    try:
        yield env, server.url
    finally:
        server.stop()
        env.stop()


def _flagged_incident(env: ServiceEnv) -> IncidentRef:
    fake = env.fake
    pm = fake.add_issue(REPO, "Postmortem: checkout outage", BLAME_PM, labels=["postmortem"])
    number = fake.add_issue(REPO, "Checkout down", f"Postmortem: #{pm}", labels=["incident"])
    fake.close_issue(REPO, number)
    ref = IncidentRef("github", fake.url, REPO, str(number))
    assert env.service.check_now(ref).status == "needs-review"
    return ref


def _comment(env: ServiceEnv, ref: IncidentRef) -> str:
    [body] = [
        c["body"] for c in env.fake.comments(REPO, int(ref.key)) if GITHUB_MARKER in c["body"]
    ]
    return body


def _settled(env: ServiceEnv) -> bool:
    with session_scope(env.service.sessions) as db:
        return all(j.status in ("done", "failed") for j in queries.recent_jobs(db))


# Every page the browser opens is watched for Content-Security-Policy violations.
no_csp_violations = csp_fixture()


def _sign_in(browser: Any, base: str, username: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("console", watch_csp)
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/incidents")
    return page


def test_an_incident_manager_reviews_a_flagged_postmortem(
    browser: Any, served: tuple[ServiceEnv, str]
) -> None:
    env, base = served
    ref = _flagged_incident(env)
    assert "“should have checked”" in _comment(env, ref)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page = _sign_in(browser, base, "mia")
    # The ticket's comment links the id unquoted: "#2" arrives as the URL fragment, and
    # the not-found page's script moves it back into the path.
    page.goto(f"{base}/incidents/{ref.id}")
    page.wait_for_url(lambda url: url.endswith(f"/incidents/{ref.id.replace('#', '%23')}"))
    assert "Checkout down" in page.inner_text("h1")

    page.goto(f"{base}/incidents")
    row = page.locator("tr", has_text="Checkout down")
    assert "Needs review" in row.inner_text() and "2 open" in row.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "queue.png"), full_page=True)

    row.get_by_role("link").click()
    page.wait_for_selector("pre.postmortem mark")
    assert page.url.endswith("%23" + ref.key)
    # The postmortem's own <script> is shown as text, never run.
    assert page.title() != "pwned"
    assert '<script>document.title = "pwned"</script>' in page.inner_text("pre.postmortem")
    assert page.locator("pre.postmortem mark").count() == 2
    page.screenshot(path=str(SCREENSHOTS / "incident.png"), full_page=True)

    omission = page.locator("li.finding", has_text="blame.omission")
    omission.get_by_role("button", name="Accept").click()
    page.wait_for_selector("text=Flag accepted.")
    assert "Accepted by mia" in page.locator("li.finding", has_text="blame.omission").inner_text()

    hindsight = page.locator("li.finding", has_text="blame.counterfactual-modal")
    # The browser itself will not send a false positive without a reason (required field).
    hindsight.get_by_role("button", name="Mark false positive").click()
    assert page.locator("text=Flag marked a false positive.").count() == 0
    hindsight.get_by_label("Why is this a false positive?").fill(
        "The sentence paraphrases the runbook's own wording."
    )
    hindsight.get_by_role("button", name="Mark false positive").click()
    page.wait_for_selector("text=Flag marked a false positive.")

    wait_until(lambda: _settled(env) and "should have checked" not in _comment(env, ref),
               what="the false positive to drop off the ticket's comment")
    assert "“forgot”" in _comment(env, ref)

    page.reload()
    page.get_by_text("Waive the check", exact=True).first.click()  # opens the details
    page.fill("#waiver-reason", "Game-day drill, reviewed in the drill's own retro.")
    page.fill("#waiver-until", (datetime.now(UTC) + timedelta(days=14)).date().isoformat())
    page.locator("form.waive-form").get_by_role("button", name="Waive the check").click()
    page.wait_for_selector("text=Check waived.")
    wait_until(lambda: _settled(env) and "waived" in _comment(env, ref),
               what="the waived comment")
    body = _comment(env, ref)
    assert "An incident manager waived the postmortem check" in body and "mia" not in body
    assert "postmortem:ok" in env.fake.labels(REPO, int(ref.key))
    page.reload()
    assert "The check is waived" in page.inner_text("#waiver")
    page.screenshot(path=str(SCREENSHOTS / "incident-waived.png"), full_page=True)

    page.goto(f"{base}/audit")
    audit = page.inner_text("table.audit")
    for action in ("incident.waive", "finding.false-positive", "finding.accepted"):
        assert action in audit
    page.screenshot(path=str(SCREENSHOTS / "audit.png"), full_page=True)
    page.context.close()

    # An engineer reads the same page without any decision button, and a decision posted
    # anyway (with a valid CSRF token from their own session) is refused.
    page = _sign_in(browser, base, "eli")
    page.goto(f"{base}/incidents/{ref.id.replace('#', '%23')}")
    page.wait_for_selector("pre.postmortem")
    assert page.locator("form[action*='/findings/'] button").count() == 0
    assert page.get_by_role("button", name="Re-check now").count() == 0
    assert page.get_by_role("button", name="Waive the check").count() == 0
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    finding_id = re.search(r'id="finding-(\d+)"', page.content()).group(1)
    response = page.request.post(
        f"{base}/findings/{finding_id}/accept", form={"csrf_token": token}, max_redirects=0
    )
    assert response.status == 403
    assert "Not permitted" in response.text()
    page.context.close()
