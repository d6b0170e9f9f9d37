"""Admins' rule tuning through the Flask test client: role checks and CSRF on every admin
route, draft validation messages, the playground, replay on stored postmortems, publish,
history with diffs, rollback — and that the worker's Service.pack follows each publish.

The packs and postmortems here are our own: two or three rules with LOWER patterns only, so
their examples run the same (and in milliseconds) in the trained and the blank pipeline.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from nlp.model import Finding as NlpFinding
from store import packs
from store import queries as q
from store import users as store_users
from store.db import session_scope
from store.models import AuditEntry, RulePackVersion
from tests.service_env import ServiceEnv, make_settings
from tests.web_helpers import PASSWORD, cheap_hashing, csrf_token, signed_in  # noqa: F401
from tests.yaml_bombs import billion_laughs, wide_pack
from web.admin import highlight
from worker import tuning

ROLES = ("engineer", "incident_manager", "admin")

PACK_V1 = """\
name: default
version: "tuning-1"
rules:
  - id: team.forgot
    category: negative-action
    severity: warning
    message: "This names a person as forgetting a step. What made the step easy to miss?"
    explanation: "Forgetting points at a step nothing prompted."
    suggestion: "What would have prompted this step at that moment?"
    patterns:
      - [{LOWER: {IN: [forgot, forget, forgets, forgotten]}}]
    examples:
      match:
        - "Lena forgot the cache warm-up before the switch."
        - "The operator forgot to drain the queue."
      no_match:
        - "The switch went ahead without a cache warm-up."
        - "The queue drained slowly overnight."
  - id: team.careless
    category: judgemental
    severity: error
    message: "A judgement about care explains little. What made careful work hard here?"
    explanation: "Adjectives about a person's care replace the question of conditions."
    suggestion: "What about the tooling made the careful path slower than the quick one?"
    patterns:
      - [{LOWER: {IN: [careless, carelessly]}}]
    examples:
      match:
        - "It was a careless edit of the routing table."
        - "The flag was flipped carelessly."
      no_match:
        - "The routing table edit had no review step."
        - "The flag service lacks an audit trail."
"""

# v2: team.careless re-levelled and given a word ("sloppy"); team.forgot removed.
PACK_V2 = """\
name: default
version: "tuning-2"
rules:
  - id: team.careless
    category: judgemental
    severity: warning
    message: "A judgement about care explains little. What made careful work hard here?"
    explanation: "Adjectives about a person's care replace the question of conditions."
    suggestion: "What about the tooling made the careful path slower than the quick one?"
    patterns:
      - [{LOWER: {IN: [careless, carelessly, sloppy]}}]
    examples:
      match:
        - "It was a careless edit of the routing table."
        - "The flag was flipped carelessly."
        - "A sloppy rollout plan."
      no_match:
        - "The routing table edit had no review step."
        - "The flag service lacks an audit trail."
"""

# Loads, but an example fails: "forgot" is no longer a pattern word.
PACK_FAILING = PACK_V1.replace("[forgot, forget, forgets, forgotten]", "[forget, forgets]")
# A field with a bad value: the message names the rule and the field.
PACK_BAD_FIELD = PACK_V1.replace("severity: error", "severity: loud")
# Broken YAML on line 5 (an unclosed flow sequence).
PACK_BAD_YAML = "name: default\nversion: x\nrules:\n  - id: team.forgot\n    patterns: [[\n"


# --- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ServiceEnv]:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "")
    e = ServiceEnv(settings, "pmguard-admin")
    e.service.pack_refresh_seconds = 3600  # only an explicit refresh may move the pack
    with session_scope(e.service.sessions) as db:
        for role in ROLES:
            store_users.create_user(db, role, PASSWORD, role)
    yield e
    e.stop()


@pytest.fixture
def app(env: ServiceEnv) -> Flask:
    return env.app








@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return signed_in(app, "admin")


def post(client: FlaskClient, path: str, **data: str):
    return client.post(path, data={"csrf_token": csrf_token(client, "/account"), **data})


def bench(client: FlaskClient, path: str, draft: str, **data: str):
    """Post the draft workbench to `path` (validate, playground, replay, publish)."""
    return post(client, path, draft=draft, **data)


def text_of(response) -> str:
    return unescape(response.get_data(as_text=True))


def words(response) -> str:
    """The page's text without tags, whitespace folded."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", text_of(response)))


def publish(env: ServiceEnv, text: str, reason: str = "seed") -> RulePackVersion:
    with session_scope(env.service.sessions) as db:
        return tuning.publish(db, packs.DEFAULT_NAME, text, "admin", reason)


def history(env: ServiceEnv) -> list[RulePackVersion]:
    with session_scope(env.service.sessions) as db:
        return packs.pack_history(db, packs.DEFAULT_NAME)


def store_postmortem(env: ServiceEnv, key: str, text: str, title: str = "") -> None:
    """One checked incident with one postmortem whose latest analysis holds `text`."""
    with session_scope(env.service.sessions) as db:
        incident = q.upsert_incident(
            db, "jira", "https://ops.example.net", "OPS", key, title=f"Incident {key}",
            verdict="needs-review",
        )
        pm = q.link_postmortem(db, incident, kind="issue", locator=f"PM-{key}",
                               title=title or f"Review of {key}")
        q.save_analysis(
            db, incident.id, pm.id, text, "markdown", "default", "tuning-1", "blank",
            "needs-review", [], [], {},
        )


# --- roles and CSRF ---------------------------------------------------------------------

ADMIN_ROUTES = [
    ("GET", "/rules"),
    ("GET", "/rules/draft"),
    ("POST", "/rules/draft"),
    ("POST", "/rules/playground"),
    ("POST", "/rules/replay"),
    ("POST", "/rules/publish"),
    ("GET", "/rules/history"),
    ("POST", "/rules/rollback/1"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
@pytest.mark.parametrize("role", ["engineer", "incident_manager"])
def test_admin_routes_refuse_other_roles(app: Flask, role: str, method: str, path: str) -> None:
    client = signed_in(app, role)
    data = {"csrf_token": csrf_token(client, "/account"), "draft": PACK_V1, "reason": "x"}
    r = client.open(path, method=method, data=data if method == "POST" else None)
    assert r.status_code == 403
    assert "Not permitted" in r.get_data(as_text=True)


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_send_anonymous_to_sign_in(app: Flask, method: str, path: str) -> None:
    client = app.test_client()
    token = csrf_token(client)
    r = client.open(path, method=method, data={"csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")


@pytest.mark.parametrize("path", ["/rules", "/rules/draft", "/rules/history"])
def test_admin_pages_open_to_admins(admin: FlaskClient, path: str) -> None:
    assert admin.get(path).status_code == 200


def test_learning_health_is_open_to_every_role(app: Flask) -> None:
    for role in ROLES:
        assert signed_in(app, role).get("/health/learning").status_code == 200
    r = app.test_client().get("/health/learning")
    assert r.status_code == 302


@pytest.mark.parametrize("path", [p for m, p in ADMIN_ROUTES if m == "POST"])
def test_admin_posts_need_the_csrf_token(env: ServiceEnv, admin: FlaskClient, path: str) -> None:
    publish(env, PACK_V1)
    publish(env, PACK_V2)
    r = admin.post(path, data={"draft": PACK_V2, "reason": "no token"})
    assert r.status_code == 400
    assert "Form expired" in r.get_data(as_text=True)
    assert len(history(env)) == 2  # nothing published or rolled back


def test_every_admin_view_requires_admin_except_learning_health(app: Flask) -> None:
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin."):
            continue
        needed = getattr(app.view_functions[rule.endpoint], "required_role", None)
        expected = "engineer" if rule.endpoint == "admin.learning_health" else "admin"
        assert needed == expected, rule.rule


# --- the rules page ---------------------------------------------------------------------


def test_rules_page_shows_the_shipped_pack_when_nothing_is_published(admin: FlaskClient) -> None:
    html = text_of(admin.get("/rules"))
    assert "shipped default" in html
    assert "blame.counterfactual-modal" in html and "counterfactual" in html


def test_rules_page_reads_the_published_pack_worst_rule_first(
    env: ServiceEnv, admin: FlaskClient
) -> None:
    row = publish(env, PACK_V1)
    with session_scope(env.service.sessions) as db:
        # Five incidents flag "careless": four dismissed as false positives, one accepted.
        for n in range(5):
            incident = q.upsert_incident(db, "jira", "https://ops.example.net", "OPS", f"OPS-{n}")
            analysis = q.save_analysis(
                db, incident.id, None, "", "markdown", "default", row.version, "blank",
                "needs-review",
                [{"rule": "team.careless", "text": "Careless", "sentence": f"Careless {n}."},
                 {"rule": "team.forgot", "text": "forgot", "sentence": f"Lena forgot {n}."}],
                [], {},
            )
            careless, forgot = analysis.findings
            decision = "accepted" if n == 0 else "false-positive"
            q.decide_finding(db, careless.id, decision, "incident_manager",
                             None if n == 0 else "describes the config, not a person")
            q.decide_finding(db, forgot.id, "accepted", "incident_manager")
    html = text_of(admin.get("/rules"))
    assert f"version <strong>{row.version}</strong>" in html
    figures = html[html.index("Which rule to fix first"):html.index("The rules</h2>")]
    # team.careless (precision 20%) before team.forgot (100%).
    assert figures.index("team.careless") < figures.index("team.forgot")
    assert "20%" in figures and "100%" in figures
    assert "“careless” ×4" in figures
    catalogue = html[html.index("The rules</h2>"):]
    assert catalogue.index('id="rule-team.careless"') < catalogue.index('id="rule-team.forgot"')
    for text in ("What made the step easy to miss?", "Forgetting points at a step nothing",
                 "Lena forgot the cache warm-up before the switch.", "judgemental"):
        assert text in catalogue


# --- the draft: validation --------------------------------------------------------------


def test_draft_starts_from_the_active_text(env: ServiceEnv, admin: FlaskClient) -> None:
    assert "blame.counterfactual-modal" in text_of(admin.get("/rules/draft"))
    publish(env, PACK_V1)
    html = text_of(admin.get("/rules/draft"))
    assert PACK_V1 in html  # the exact text, in the textarea
    assert 'id="publish-button"' in html and re.search(r'id="publish-button"[^>]*disabled', html)
    # Validated but unchanged: nothing to publish, so the button stays off.
    html = text_of(bench(admin, "/rules/draft", PACK_V1))
    assert "every example passes" in html and "nothing to publish" in html
    assert re.search(r'id="publish-button"[^>]*disabled', html)


def test_valid_draft_passes_and_lists_its_changes(env: ServiceEnv, admin: FlaskClient) -> None:
    publish(env, PACK_V1)
    r = bench(admin, "/rules/draft", PACK_V2)
    assert r.status_code == 200
    html = text_of(r)
    assert "every example passes" in html
    assert "team.forgot</code> removed" in html
    assert "team.careless</code> changed: severity, patterns, examples" in html
    assert not re.search(r'id="publish-button"[^>]*disabled', html)


def test_bad_yaml_is_reported_with_its_line(admin: FlaskClient) -> None:
    r = bench(admin, "/rules/draft", PACK_BAD_YAML)
    html = text_of(r)
    assert "The draft does not load" in html
    assert "draft: invalid YAML at line" in html
    assert re.search(r"<dt>Line</dt><dd>\d+</dd>", html)
    assert re.search(r'id="publish-button"[^>]*disabled', html)


def test_bad_field_names_the_rule_and_the_field(admin: FlaskClient) -> None:
    html = text_of(bench(admin, "/rules/draft", PACK_BAD_FIELD))
    assert "draft: rule 'team.careless': field 'severity': 'loud' is not one of" in html
    assert "<dt>Rule</dt><dd><code>team.careless</code></dd>" in html
    assert "<dt>Field</dt><dd><code>severity</code></dd>" in html


def test_failing_examples_are_listed_per_pipeline_mode(admin: FlaskClient) -> None:
    html = text_of(bench(admin, "/rules/draft", PACK_FAILING))
    assert "Rule examples fail" in html
    for mode in ("auto", "blank"):
        table = re.search(rf'data-mode="{mode}">(.*?)</table>', html, re.S)
        assert table, mode
        assert "team.forgot" in table.group(1)
        assert "Lena forgot the cache warm-up before the switch." in table.group(1)
        assert "should be flagged but is not" in table.group(1)
    assert re.search(r'id="publish-button"[^>]*disabled', html)


def test_bad_replay_size_and_empty_draft_are_refused(admin: FlaskClient) -> None:
    r = bench(admin, "/rules/replay", PACK_V1, replay_n="500")
    assert r.status_code == 400 and "between 1 and 200" in text_of(r)
    r = bench(admin, "/rules/draft", "   ")
    assert r.status_code == 400 and "The draft is empty." in text_of(r)


# --- publish, history, rollback ---------------------------------------------------------


def test_publish_is_refused_while_examples_fail(env: ServiceEnv, admin: FlaskClient) -> None:
    r = bench(admin, "/rules/publish", PACK_FAILING, reason="try anyway")
    assert r.status_code == 400
    assert "Not published" in text_of(r)
    assert history(env) == []
    r = bench(admin, "/rules/publish", PACK_BAD_FIELD, reason="try anyway")
    assert r.status_code == 400 and history(env) == []


def test_publish_needs_a_reason(env: ServiceEnv, admin: FlaskClient) -> None:
    r = bench(admin, "/rules/publish", PACK_V1, reason="  ")
    assert r.status_code == 400
    assert "Publishing needs a reason" in text_of(r)
    assert history(env) == []


def test_publish_creates_a_version_the_worker_follows(env: ServiceEnv, admin: FlaskClient) -> None:
    assert env.service.pack.rule("team.forgot") is None  # the shipped default
    r = bench(admin, "/rules/publish", PACK_V1, reason="our own wording")
    assert r.status_code == 303
    (row,) = history(env)
    assert r.headers["Location"] == f"/rules/history?version={row.id}"
    assert row.active and row.text == PACK_V1 and row.created_by == "admin"
    # The worker's pack follows the published version (refresh interval: an hour here, so
    # this is the publish's own refresh, not a timer).
    assert env.service.pack.version == row.version
    assert env.service.pack.rule("team.forgot") is not None
    with session_scope(env.service.sessions) as db:
        entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "publish-rules")).one()
        assert (entry.actor, entry.reason) == ("admin", "our own wording")
    page = text_of(admin.get(r.headers["Location"]))
    assert f"Published rule pack version {row.version}" in page
    assert "against shipped default" in page
    # The same text again is a double submit, refused with a message.
    r = bench(admin, "/rules/publish", PACK_V1, reason="again")
    assert r.status_code == 409 and "identical to the active version" in text_of(r)


def test_history_shows_the_diff_against_the_predecessor(env: ServiceEnv, admin: FlaskClient):
    v1 = publish(env, PACK_V1)
    v2 = publish(env, PACK_V2.replace("explains little.", "explains little <b>here</b>."))
    html = admin.get("/rules/history").get_data(as_text=True)
    assert html.index(v2.version) < html.index(v1.version)  # newest first
    assert f"{v2.version} against {v1.version}" in html
    assert "team.forgot</code> removed" in html
    assert "team.careless</code> changed: severity, patterns, message, examples" in html
    assert '<span class="del">-severity: error</span>' in html
    assert '<span class="add">+severity: warning</span>' in html
    assert "&lt;b&gt;here&lt;/b&gt;" in html and "<b>here</b>" not in html  # escaped
    # An older version's diff, chosen by id.
    html = text_of(admin.get(f"/rules/history?version={v1.id}"))
    assert f"{v1.version} against shipped default" in html


def test_rollback_needs_a_reason_then_restores_the_old_text(
    env: ServiceEnv, admin: FlaskClient
) -> None:
    v1 = publish(env, PACK_V1)
    publish(env, PACK_V2)
    env.service.current_pack(refresh=True)
    assert env.service.pack.rule("team.forgot") is None
    r = post(admin, f"/rules/rollback/{v1.id}", reason=" ")
    assert r.status_code == 400 and "needs a reason" in text_of(r)
    assert len(history(env)) == 2
    r = post(admin, f"/rules/rollback/{v1.id}", reason="v2 dropped a rule we need")
    assert r.status_code == 303
    latest = history(env)[0]
    assert latest.active and latest.text == PACK_V1 and latest.id not in (v1.id,)
    assert env.service.pack.version == latest.version
    assert env.service.pack.rule("team.forgot") is not None
    assert "Rolled back" in text_of(admin.get(r.headers["Location"]))
    # Rolling back to the version in force, or to nothing, is refused.
    r = post(admin, f"/rules/rollback/{latest.id}", reason="again")
    assert r.status_code == 409 and "already active" in text_of(r)
    assert post(admin, "/rules/rollback/9999", reason="gone").status_code == 404


# --- playground and replay --------------------------------------------------------------


def test_playground_highlights_escaped_text_under_both_packs(
    env: ServiceEnv, admin: FlaskClient
) -> None:
    publish(env, PACK_V1)
    sample = "Lena forgot the <script>alert('x')</script> step.\n\nIt was a sloppy rollout."
    r = bench(admin, "/rules/playground", PACK_V2, sample=sample)
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    result = html[html.index('id="playground-result"'):]
    draft_side, active_side = result.split("<h3>In force", 1)
    # The draft flags "sloppy" (new word) and no longer knows team.forgot; the pack in force
    # flags "forgot".
    assert re.search(r'<mark class="flag sev-warning"[^>]*data-rules="team.careless">sloppy</mark>',
                     draft_side)
    assert "team.forgot" not in draft_side.split("</pre>")[0]
    assert re.search(r'<mark[^>]*data-rules="team.forgot">forgot</mark>', active_side)
    assert "1</strong> flag(s) only under the draft" in result
    assert "1</strong> only under the pack in force" in result


def test_playground_with_a_broken_draft_still_shows_the_active_pack(admin: FlaskClient) -> None:
    r = bench(admin, "/rules/playground", PACK_BAD_FIELD, sample="He should have checked.")
    html = text_of(r)
    assert r.status_code == 200
    assert "The draft does not load" in html
    assert "only the pack in force ran" in html


def test_replay_shows_flags_added_and_removed_per_postmortem(
    env: ServiceEnv, admin: FlaskClient
) -> None:
    publish(env, PACK_V1)
    env.service.current_pack(refresh=True)
    store_postmortem(env, "OPS-1", "Kai forgot to pause the import job.", "Import stall")
    store_postmortem(env, "OPS-2", "A sloppy runbook step left the queue open.", "Queue spill")
    store_postmortem(env, "OPS-3", "The disk filled during the nightly compaction.", "Disk")
    r = bench(admin, "/rules/replay", PACK_V2, replay_n="10")
    assert r.status_code == 200
    html = text_of(r)
    assert "3 postmortem(s) replayed, 2 would change" in words(r)
    assert "+1 flag(s) added, −1 removed" in words(r)
    items = re.findall(r'<article class="replay-item">(.*?)</article>', html, re.S)
    assert len(items) == 2
    by_title = {re.search(r"<h3>(.*?) <span", i).group(1): i for i in items}
    assert '<li class="removed">− ' in by_title["Import stall"]
    assert "team.forgot</code> line 1: “forgot”" in by_title["Import stall"]
    assert '<li class="added">+ ' in by_title["Queue spill"]
    assert "team.careless</code> line 1: “sloppy”" in by_title["Queue spill"]
    # Only the last N: the newest one stored.
    r = bench(admin, "/rules/replay", PACK_V2, replay_n="1")
    assert "1 postmortem(s) replayed, 0 would change" in words(r)


# --- highlighting (pure) ----------------------------------------------------------------


def _f(rule: str, start: int, end: int, suppressed: bool = False) -> NlpFinding:
    return NlpFinding(rule, "judgemental", "warning", "m", "s", start, end, 1, start + 1, 1,
                      end + 1, "x", suppressed=suppressed)


def test_highlight_cuts_text_once_even_when_findings_overlap() -> None:
    text = "abcdefghij"
    out = highlight(text, [_f("r.a", 2, 5), _f("r.b", 4, 7), _f("r.c", 8, 9),
                           _f("r.d", 0, 1, suppressed=True)])
    assert "".join(t for t, _ in out.segments) == text
    assert [(t, [f.rule for f in g]) for t, g in out.segments] == [
        ("ab", []), ("cdefg", ["r.a", "r.b"]), ("h", []), ("i", ["r.c"]), ("j", []),
    ]
    assert [f.rule for f in out.findings] == ["r.a", "r.b", "r.c"]


@pytest.mark.parametrize(
    "draft", [billion_laughs("definitions") + "rules: []\n", wide_pack()], ids=["laughs", "wide"]
)
def test_a_draft_whose_aliases_expand_too_far_is_refused_fast(
    admin: FlaskClient, draft: str
) -> None:
    started = time.perf_counter()
    html = text_of(bench(admin, "/rules/draft", draft))
    assert time.perf_counter() - started < 1.0
    assert "The draft does not load" in html
    assert "draft: YAML aliases in draft stand for over" in html
    assert re.search(r"<dt>Line</dt><dd>\d+</dd>", html)
