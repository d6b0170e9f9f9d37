"""The admin's rule tuning in a real browser: Playwright for Python driving Debian's Chromium
(/usr/bin/chromium; never `playwright install`) against the real app served on 127.0.0.1.

An admin signs in, edits a rule in the draft, validates it, tries it in the playground (as
they type and on submit), replays it on stored postmortems, publishes, sees the new version
in the history and rolls back; an engineer is refused the admin pages but reads learning
health. Screenshots land in test-artifacts/screenshots/.

Skipped with a reason where Chromium or the playwright package is missing; with CI set,
that fails instead, so a CI run cannot silently lose its browser coverage.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import argon2
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


if not CHROMIUM.exists():
    _unavailable(f"{CHROMIUM} is absent: install Debian's chromium package (see .ci/run)")
try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:
    _unavailable("the playwright package is not installed (pip install playwright)")

from werkzeug.serving import make_server  # noqa: E402

from store import packs  # noqa: E402
from store import queries as q  # noqa: E402
from store import users as store_users  # noqa: E402
from store.db import session_scope  # noqa: E402
from tests.service_env import ServiceEnv, make_settings  # noqa: E402
from tests.test_admin import PACK_V1, store_postmortem  # noqa: E402
from tests.web_helpers import csp_fixture, watch_csp  # noqa: E402
from worker import tuning  # noqa: E402

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(store_users, "PASSWORD_HASHER", cheap)
    monkeypatch.setattr(store_users, "_dummy_hash", None)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ServiceEnv]]:
    env = ServiceEnv(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", ""), "b")
    with session_scope(env.service.sessions) as db:
        store_users.create_user(db, "ada-admin", PASSWORD, "admin")
        store_users.create_user(db, "eli-engineer", PASSWORD, "engineer")
        tuning.publish(db, packs.DEFAULT_NAME, PACK_V1, "ada-admin", "our starting pack")
    env.service.current_pack(refresh=True)
    seed_learning(env)
    # The newest two stored postmortems: the ones a replay of the last 2 reads.
    store_postmortem(env, "OPS-1", "Kai forgot to pause the import job.", "Import stall")
    store_postmortem(env, "OPS-2", "A sloppy runbook step left the queue open.", "Queue spill")
    server = make_server("127.0.0.1", 0, env.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="pmguard-test-web", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", env
    finally:
        server.shutdown()
        thread.join(timeout=5)
        env.stop()


def seed_learning(env: ServiceEnv) -> None:
    """Closed incidents over the last half year for three teams, some with postmortems and
    action items, so the learning-health screenshot shows lines rather than empty axes."""
    rng = random.Random(7)
    now = env.service.now()
    with session_scope(env.service.sessions) as db:
        for n in range(36):
            team = ("checkout", "platform", "data")[n % 3]
            closed = now - timedelta(days=rng.randint(1, 175))
            incident = q.upsert_incident(
                db, "jira", "https://ops.example.net", "INC", f"INC-{n}", closed_at=closed,
                verdict="needs-review", team=team,
            )
            if rng.random() < 0.25 + 0.2 * (n % 3):
                continue  # no postmortem linked
            pm = q.link_postmortem(db, incident, kind="issue", locator=f"PIR-{n}")
            items = [
                {"text": "t", "owner": "@someone" if rng.random() < 0.7 else None,
                 "due": (closed + timedelta(days=rng.randint(5, 40))).date().isoformat()
                 if rng.random() < 0.6 else None,
                 "tracking": ["INC-1"] if rng.random() < 0.5 else [], "done": None}
                for _ in range(rng.randint(0, 3))
            ]
            flags = [{"rule": "team.forgot", "text": "forgot", "sentence": f"s{n}-{k}"}
                     for k in range(rng.randint(0, 4))]
            analysis = q.save_analysis(db, incident.id, pm.id, "text", "markdown", "default",
                                       "v", "blank", "needs-review", flags, items, {})
            analysis.created_at = closed + timedelta(days=rng.uniform(0.2, 12))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


# Every page the browser opens is watched for Content-Security-Policy violations.
no_csp_violations = csp_fixture()


def sign_in(browser: Browser, base: str, username: str) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("console", watch_csp)
    page.set_default_timeout(15_000)
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_load_state()
    assert "/login" not in page.url
    return page


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)


def test_admin_tunes_a_rule_and_rolls_back(
    browser: Browser, served: tuple[str, ServiceEnv]
) -> None:
    base, env = served
    page = sign_in(browser, base, "ada-admin")

    page.goto(f"{base}/rules")
    assert page.locator("h2#figures").is_visible()
    assert page.locator("#rule-team\\.careless .sev").inner_text() == "error"
    shot(page, "rules.png")

    # The draft starts from the pack in force; publishing is off until it validates.
    page.goto(f"{base}/rules/draft")
    assert page.input_value("#draft") == PACK_V1
    assert page.locator("#publish-button").is_disabled()
    edited = (
        PACK_V1.replace("severity: error", "severity: warning")
        .replace("[careless, carelessly]", "[careless, carelessly, sloppy]")
        .replace('        - "The flag was flipped carelessly."\n',
                 '        - "The flag was flipped carelessly."\n'
                 '        - "A sloppy rollout plan."\n')
    )
    page.fill("#draft", edited)
    page.click("button:has-text('Validate')")
    page.wait_for_load_state()
    assert "every example passes" in page.locator("#validation").inner_text()
    assert "team.careless changed: severity, patterns, examples" in page.locator(
        "#validation").inner_text()
    assert page.locator("#publish-button").is_enabled()

    # The playground as you type: our script posts the text and the draft to the lint API.
    sample = "Kai forgot the <script>window.pwned = 1</script> toggle.\n\nA sloppy rollout plan."
    page.fill("#sample", sample)
    # A locator wait, not wait_for_function: the page's CSP (no eval) holds in tests too.
    page.locator("#live .live-status", has_text="under the draft").wait_for()
    live_marks = page.locator("#live mark").all_inner_texts()
    assert "sloppy" in live_marks and "forgot" in live_marks
    # ... and on submit, the draft beside the pack in force, the text escaped.
    page.click("button:has-text('Try in the playground')")
    page.wait_for_load_state()
    result = page.locator("#playground-result")
    assert "<script>window.pwned = 1</script>" in result.locator("pre").first.inner_text()
    assert page.evaluate("typeof window.pwned") == "undefined"
    draft_marks = result.locator("pre").first.locator("mark").all_inner_texts()
    assert draft_marks == ["forgot", "sloppy"]
    active_marks = result.locator("pre").nth(1).locator("mark").all_inner_texts()
    assert active_marks == ["forgot"]

    # Replay on the stored postmortems: "sloppy" is a new flag on one of them.
    page.fill("#replay_n", "2")
    page.click("button:has-text('Replay the draft')")
    page.wait_for_load_state()
    replay = page.locator("#replay-result")
    assert "2 postmortem(s) replayed, 1 would change" in " ".join(replay.inner_text().split())
    assert "Queue spill" in replay.locator(".replay-item").inner_text()
    assert "sloppy" in replay.locator("li.added").inner_text()
    shot(page, "draft-replay.png")

    # Publish with a reason: the history shows the new version in force.
    page.fill("#reason", "sloppy is a judgement too; warning is enough")
    page.click("#publish-button")
    page.wait_for_load_state()
    assert "/rules/history" in page.url
    assert "Published rule pack version" in page.locator(".flash").inner_text()
    rows = page.locator("table.versions tbody tr")
    assert rows.count() == 2
    assert "in force" in rows.nth(0).inner_text()
    assert "team.careless changed" in page.locator("#diff").inner_text()
    assert env.service.pack.rule("team.careless").severity == "warning"
    published = rows.nth(0).get_attribute("data-version")

    # One-click rollback (with its reason) to the first version.
    first = rows.nth(1)
    first.locator("input[name=reason]").fill("the wording needs another look")
    first.locator("button:has-text('Roll back to this')").click()
    page.wait_for_load_state()
    assert "Rolled back" in page.locator(".flash").inner_text()
    rows = page.locator("table.versions tbody tr")
    assert rows.count() == 3
    assert rows.nth(0).get_attribute("data-version") != published
    assert "in force" in rows.nth(0).inner_text()
    assert env.service.pack.rule("team.careless").severity == "error"
    page.context.close()


def test_engineer_is_refused_admin_pages_but_reads_learning_health(
    browser: Browser, served: tuple[str, ServiceEnv]
) -> None:
    base, _env = served
    page = sign_in(browser, base, "eli-engineer")
    for path in ("/rules", "/rules/draft", "/rules/history"):
        response = page.goto(f"{base}{path}")
        assert response is not None and response.status == 403, path
        assert "Not permitted" in page.locator("h1").inner_text()
    assert page.locator("header nav a:has-text('Rules')").count() == 0
    response = page.goto(f"{base}/health/learning?days=180&bucket=month")
    assert response is not None and response.status == 200
    assert page.locator("svg.chart").count() == 5
    shot(page, "learning-health.png")
    page.context.close()
