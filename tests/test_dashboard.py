"""The incident managers' dashboard through the Flask test client: the queue, the incident
page, decisions, waivers, re-checks and the audit log.

Most tests seed the store directly (fast, exact offsets); the end-to-end ones run a real
check against the fake GitHub and a huey worker, and read the ticket's comment there.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from check.comment import GITHUB_MARKER
from connector.base import IncidentRef
from store import queries
from store import users as store_users
from store.db import session_scope
from store.models import AuditEntry, Finding, Incident, Job
from tests.fakes.github import FakeGitHub, fake_github  # noqa: F401
from tests.service_env import ServiceEnv, make_settings, wait_until
from tests.web_helpers import PASSWORD, cheap_hashing, csrf_token, signed_in  # noqa: F401
from web.dashboard import Span, highlight, locate

SITE = "https://api.github.invalid"
REPO = "acme/ops"
NOW = datetime.now(UTC)

BLAME_PM = """# Postmortem: checkout outage

## What happened
Ravi forgot to run the migration before the deploy. The on-call engineer should have
checked the replica lag.

## Action items
- Make the deploy run pending migrations automatically (#90, owner @sre)
"""

HOSTILE = (
    "Summary: <script>alert(1)</script> broke nothing.\n"
    'Then <img src=x onerror="alert(2)"> showed up & Ravi forgot the flag.\n'
)


# --- fixtures and helpers ---------------------------------------------------------------


def _add_users(app: Flask) -> None:
    with session_scope(app.extensions["pmguard"].sessions) as db:
        for name, role in (("eli", "engineer"), ("mia", "incident_manager"), ("ada", "admin")):
            store_users.create_user(db, name, PASSWORD, role)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ServiceEnv]:
    """The app and store, no worker: jobs are created but not run."""
    settings = make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "", github_url=SITE, github_token="t"
    )
    e = ServiceEnv(settings, "pmguard-dashboard")
    _add_users(e.app)
    yield e
    e.stop()


@pytest.fixture
def gh_env(tmp_path: Path, fake_github: FakeGitHub) -> Iterator[ServiceEnv]:  # noqa: F811
    """The app, store and a worker, checking against the fake GitHub."""
    settings = make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", "", github_url=fake_github.url,
        github_token=fake_github.token, bot_login=fake_github.user,
    )
    e = ServiceEnv(settings, "pmguard-dashboard-e2e")
    e.fake = fake_github
    fake_github.add_repo(REPO)
    _add_users(e.app)
    e.start_worker()
    yield e
    e.stop()


def db(e: ServiceEnv):
    return session_scope(e.service.sessions)





def post(client: FlaskClient, path: str, **form: str):
    token = csrf_token(client, "/incidents")
    return client.post(path, data={"csrf_token": token, **form})


def page_url(incident_id: str) -> str:
    # What url_for builds: '#' quoted, ':' and '/' kept.
    return "/incidents/" + incident_id.replace("%", "%25").replace("#", "%23")


def finding(rule: str, text: str, needle: str, **extra) -> dict:
    start = text.index(needle)
    return {
        "rule": rule,
        "category": extra.pop("category", "blame"),
        "severity": extra.pop("severity", "warning"),
        "message": extra.pop("message", f"{rule} message"),
        "suggestion": extra.pop("suggestion", f"What made {needle!r} likely?"),
        "text": needle,
        "sentence": extra.pop("sentence", needle),
        "start": start,
        "end": start + len(needle),
        "line": text[:start].count("\n") + 1,
        **extra,
    }


def seed(
    e: ServiceEnv,
    key: str,
    *,
    verdict: str | None = "needs-review",
    closed_days: float | None = 1,
    tracker: str = "github",
    project: str = REPO,
    site: str = SITE,
    team: str | None = None,
    severity: str | None = None,
    text: str | None = None,
    findings: list[dict] = (),
    action_items: list[dict] = (),
    title: str | None = None,
) -> str:
    """An incident (and, with `text`, one analysis of its postmortem) in the store."""
    with db(e) as session:
        incident = queries.upsert_incident(
            session, tracker, site, project, key,
            title=title or f"Incident {key}",
            url=f"https://tracker.example/{project}/issues/{key}",
            state="closed",
            closed_at=NOW - timedelta(days=closed_days) if closed_days is not None else None,
            team=team, severity=severity, verdict=verdict,
        )
        if text is not None:
            pm = queries.link_postmortem(
                session, incident, kind="issue", locator=f"{project}#pm-{key}",
                url=f"https://tracker.example/{project}/issues/pm-{key}", title="The postmortem",
            )
            queries.save_analysis(
                session, incident_id=incident.id, postmortem_id=pm.id, text=text,
                format="markdown", pack_name="default", pack_version="test", model="blank",
                verdict=verdict or "ok", findings=list(findings),
                action_items=list(action_items), summary={},
            )
        return incident.id


def findings_of(e: ServiceEnv, incident_id: str) -> list[Finding]:
    with db(e) as session:
        analysis = queries.latest_analysis(session, incident_id)
        return list(analysis.findings) if analysis else []


def jobs(e: ServiceEnv) -> list[Job]:
    with db(e) as session:
        return queries.recent_jobs(session)


def row_ids(page: str) -> list[str]:
    return [html.unescape(x) for x in re.findall(r'<tr data-incident="([^"]+)"', page)]


# --- roles and CSRF ---------------------------------------------------------------------


@pytest.fixture
def seeded(env: ServiceEnv) -> dict:
    text = BLAME_PM
    incident_id = seed(
        env, "7", text=text,
        findings=[
            finding("blame.omission", text, "forgot"),
            finding("blame.counterfactual-modal", text, "should have\nchecked"),
        ],
    )
    fids = [f.id for f in findings_of(env, incident_id)]
    return {"incident": incident_id, "findings": fids}


def _routes(seeded: dict) -> tuple[list[str], list[tuple[str, dict]]]:
    url = page_url(seeded["incident"])
    first, second = seeded["findings"]
    reads = ["/incidents", url, "/incidents?status=needs-review&page=2", "/audit"]
    # In an order that lets every write succeed for a role that may make it.
    writes = [
        (f"/findings/{first}/accept", {}),
        (f"/findings/{first}/undo", {}),
        (f"/findings/{second}/false-positive", {"reason": "quotes the runbook"}),
        (f"{url}/waiver", {"reason": "a drill", "until": ""}),
        (f"{url}/waiver/lift", {}),
        (f"{url}/recheck", {}),
    ]
    return reads, writes


def test_anonymous_requests_go_to_the_login_page(env: ServiceEnv, seeded: dict) -> None:
    client = env.app.test_client()
    reads, writes = _routes(seeded)
    for path in reads:
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"].startswith("/login"), path
    token = csrf_token(client)
    for path, form in writes:
        r = client.post(path, data={"csrf_token": token, **form})
        assert r.status_code == 302 and r.headers["Location"].startswith("/login"), path
    assert jobs(env) == []


def test_engineers_read_but_every_decision_is_refused(env: ServiceEnv, seeded: dict) -> None:
    client = signed_in(env.app, "eli")
    reads, writes = _routes(seeded)
    for path in reads:
        expected = 403 if path == "/audit" else 200  # the audit log carries reasons
        assert client.get(path).status_code == expected, path
    page = client.get(reads[1]).get_data(as_text=True)
    assert "forgot" in page
    for label in ("Accept", "Mark false positive", "Waive the check", "Re-check now", "Undo"):
        assert f">{label}</button>" not in page
    for path, form in writes:
        assert post(client, path, **form).status_code == 403, path
    assert jobs(env) == []
    assert all(f.decision is None for f in findings_of(env, seeded["incident"]))


@pytest.mark.parametrize("username", ["mia", "ada"])
def test_incident_managers_and_admins_decide(
    env: ServiceEnv, seeded: dict, username: str
) -> None:
    client = signed_in(env.app, username)
    reads, writes = _routes(seeded)
    for path in reads:
        assert client.get(path).status_code == 200, path
    page = client.get(reads[1]).get_data(as_text=True)
    assert ">Accept</button>" in page and ">Re-check now</button>" in page
    for path, form in writes:
        r = post(client, path, **form)
        assert r.status_code == 302, (path, r.get_data(as_text=True)[:500])
        assert r.headers["Location"].startswith(page_url(seeded["incident"]))
    assert len(jobs(env)) == len(writes)  # every decision queues a re-check
    with db(env) as session:
        actions = [e.action for e in session.query(AuditEntry).order_by(AuditEntry.id)]
    assert actions == [
        "finding.accepted", "finding.undecided", "finding.false-positive",
        "incident.waive", "incident.waiver-lifted", "incident.recheck",
    ]


def test_every_post_needs_a_csrf_token(env: ServiceEnv, seeded: dict) -> None:
    client = signed_in(env.app, "mia")
    _, writes = _routes(seeded)
    for path, form in writes:
        r = client.post(path, data=form)
        assert r.status_code == 400 and "Form expired" in r.get_data(as_text=True), path
        r = client.post(path, data={"csrf_token": "forged", **form})
        assert r.status_code == 400, path
    assert jobs(env) == []
    assert all(f.decision is None for f in findings_of(env, seeded["incident"]))


# --- the queue --------------------------------------------------------------------------


def test_queue_sorts_what_needs_attention_first_filters_and_paginates(env: ServiceEnv) -> None:
    a = seed(env, "1", verdict="needs-review", closed_days=10)
    b = seed(env, "2", verdict="missing", closed_days=20)
    c = seed(env, "3", verdict="ok", closed_days=40)
    d = seed(env, "4", verdict="waived", closed_days=100)
    e_ = seed(env, "5", verdict="ok", closed_days=5)
    f = seed(env, "6", verdict=None, closed_days=15)  # exempt by policy
    g = seed(env, "7", verdict="needs-review", closed_days=2)
    h = seed(env, "8", verdict="waived", closed_days=3)
    j = seed(env, "OPS-1", verdict="needs-review", closed_days=1, tracker="jira",
             project="OPS", site="https://jira.example", severity="sev1")
    with db(env) as session:
        queries.set_waiver(session, d, "mia", "a drill")
        queries.set_waiver(session, h, "mia", "expired drill", NOW - timedelta(days=1))
        # c's latest check failed; g's failed once, then succeeded.
        for incident_id, statuses in ((c, ["done", "failed"]), (g, ["failed", "done"])):
            for status in statuses:
                job = queries.create_job(session, "check", incident_id, {})
                job.status = status
    fillers = [
        seed(env, str(100 + n), verdict="ok", closed_days=200 + n, team="payments",
             severity="sev3")
        for n in range(30)
    ]
    client = signed_in(env.app, "eli")

    def ids(query: str = "") -> list[str]:
        r = client.get(f"/incidents{query}")
        assert r.status_code == 200
        return row_ids(r.get_data(as_text=True))

    fillers_oldest_first = list(reversed(fillers))
    first_page = ids()
    assert first_page[:4] == [b, a, g, j]  # needs review / missing, oldest closure first
    assert first_page[4:6] == [c, h]  # check failed, waiver expired
    assert first_page[6:] == fillers_oldest_first[:19]  # waived / ok, oldest closure first
    assert ids("?page=2") == fillers_oldest_first[19:] + [d, e_, f]  # exempt last
    assert ids("?page=99") == [] and ids(f"?page={10**30}") == []

    assert ids("?status=needs-review") == [a, g, j]
    assert ids("?status=needs-review&status=missing") == [b, a, g, j]
    assert ids("?status=check-failed") == [c]
    assert ids("?status=waived") == [h, d]
    assert ids("?status=ok&team=payments") == fillers_oldest_first[:25]
    assert ids("?tracker=jira") == [j]
    assert ids("?project=OPS") == [j]
    assert ids("?team=-") == [b, a, g, j, c, h, d, e_, f]
    assert ids("?severity=sev1") == [j]
    assert ids("?age=7") == [g, j, h, e_]
    assert ids("?status=needs-review&age=7") == [g, j]
    assert ids("?status=needs-review&tracker=github&age=30") == [a, g]
    assert ids("?status=bogus&age=12") == first_page  # unknown values do not filter

    page = client.get("/incidents?status=ok&team=payments").get_data(as_text=True)
    links = {html.unescape(u) for u in re.findall(r'href="(/incidents\?[^"]*page=2[^"]*)"', page)}
    assert links and all("status=ok" in u and "team=payments" in u for u in links)
    assert ids(sorted(links)[0].removeprefix("/incidents")) == fillers_oldest_first[25:]
    assert f'href="{page_url(a)}"' in client.get("/incidents").get_data(as_text=True)


def test_queue_rows_show_verdict_age_and_decision_counts(env: ServiceEnv) -> None:
    text = "Ravi forgot. Sam should have looked. Obviously wrong. A hero saved us."
    incident_id = seed(
        env, "9", closed_days=3, severity="sev2", team="checkout", title="Checkout <down>",
        text=text,
        findings=[
            finding("blame.omission", text, "forgot"),
            finding("blame.counterfactual", text, "should have"),
            finding("hindsight", text, "Obviously"),
            finding("heroics", text, "hero", severity="info"),
            finding("suppressed", text, "saved", suppressed=True),
        ],
    )
    fids = {f.text: f.id for f in findings_of(env, incident_id)}
    with db(env) as session:
        queries.decide_finding(session, fids["forgot"], "accepted", "mia")
        queries.decide_finding(session, fids["Obviously"], "false-positive", "mia", "a quote")
    page = signed_in(env.app, "eli").get("/incidents").get_data(as_text=True)
    row = re.search(r"<tr data-incident=.*?</tr>", page, re.S).group(0)
    assert "Checkout &lt;down&gt;" in row and "sev2" in row and "checkout" in row
    assert "Needs review" in row and "3 days ago" in row
    assert "2 open" in row and "1 accepted" in row and "1 false positive" in row


# --- the incident page ------------------------------------------------------------------


def test_postmortem_is_shown_escaped_with_findings_highlighted_in_place(
    env: ServiceEnv,
) -> None:
    text = HOSTILE
    flags = [
        finding("blame.omission", text, "Ravi forgot", message="Names a <person>"),
        finding("blame.verb", text, "forgot the", message="Second, overlapping"),
        finding("html", text, "<script>alert(1)</script>", message="Script-like"),
        finding("adjacent", text, " broke", message="Adjacent to the script"),
        # Zero width, and one whose offsets point elsewhere: listed, never highlighted.
        {**finding("actions.missing-section", text, "Summary"), "start": 0, "end": 0,
         "text": ""},
        {**finding("moved", text, "Summary"), "start": 3, "end": 10},
    ]
    incident_id = seed(env, "11", text=text, findings=flags)
    by_rule = {f.rule: f for f in findings_of(env, incident_id)}
    page = signed_in(env.app, "eli").get(page_url(incident_id)).get_data(as_text=True)

    assert "<script>alert(1)</script>" not in page
    assert "<img src=x" not in page and 'onerror="alert' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=" in page
    assert "Names a &lt;person&gt;" in page

    pre = re.search(r'<pre class="postmortem"[^>]*>(.*?)</pre>', page, re.S).group(1)
    # Our own tags only; the text between them is the postmortem exactly as read.
    assert set(re.findall(r"</?(\w+)", pre)) <= {"mark", "span"}
    shown = html.unescape(re.sub(r"<[^>]+>", "", pre))
    assert shown == "\n" + text  # the leading newline is the one HTML parsers drop

    def marked(fid: int) -> str:
        runs = re.findall(
            r'<mark class="([^"]*)" data-findings="([^"]*)" title="([^"]*)"[^>]*>(.*?)</mark>',
            pre, re.S,
        )
        return "".join(
            html.unescape(body) for _, ids, _, body in runs if str(fid) in ids.split()
        )

    for rule in ("blame.omission", "blame.verb", "html", "adjacent"):
        f = by_rule[rule]
        assert marked(f.id) == text[f.start:f.end], rule
        assert f'id="at-finding-{f.id}"' in pre  # where "show in text" jumps to
    overlap = re.search(r'<mark class="[^"]*overlap[^"]*" data-findings="([^"]*)"', pre)
    assert overlap and set(overlap.group(1).split()) == {
        str(by_rule["blame.omission"].id), str(by_rule["blame.verb"].id)
    }
    assert 'title="Names a &lt;person&gt; | Second, overlapping"' in pre
    for rule in ("actions.missing-section", "moved"):
        assert f'data-findings="{by_rule[rule].id}"' not in pre
    assert "(not located in the text)" in page

    # Each flag's card: message, category, severity, suggested question, decision state.
    card = re.search(
        rf'<li class="finding[^"]*" id="finding-{by_rule["blame.omission"].id}".*?</li>',
        page, re.S,
    ).group(0)
    for part in ("Names a &lt;person&gt;", "blame", "warning", "Suggested question:",
                 "What made &#39;Ravi forgot&#39; likely?", "No decision yet."):
        assert part in card


def test_incident_page_shows_links_action_items_and_what_they_lack(env: ServiceEnv) -> None:
    text = "## Action items\n- Fix the deploy (#90, owner @sre, due 2030-01-01)\n- Tidy up\n"
    incident_id = seed(
        env, "12", text=text,
        action_items=[
            {"text": "Fix the deploy", "owner": "@sre", "tracking": ["#90"],
             "due": "2030-01-01", "lesson_home": None},
            {"text": "Tidy up", "owner": None, "tracking": [], "due": None,
             "lesson_home": None},
        ],
    )
    page = signed_in(env.app, "eli").get(page_url(incident_id)).get_data(as_text=True)
    assert 'href="https://tracker.example/acme/ops/issues/12"' in page  # the ticket
    assert 'href="https://tracker.example/acme/ops/issues/pm-12"' in page  # the postmortem
    rows = re.findall(r"<tr>\s*<td>(.*?)</tr>", page, re.S)
    assert "nothing" in rows[0]
    assert "an owner, a tracking link, a due date" in rows[1]
    assert "No action item says where the lesson lives" in page

    # A link someone wrote is shown, but only http(s) becomes a link.
    with db(env) as session:
        queries.upsert_incident(session, "github", SITE, REPO, "12", url="javascript:alert(1)")
    page = signed_in(env.app, "eli").get(page_url(incident_id)).get_data(as_text=True)
    assert "javascript:" not in page


def test_no_items_note_follows_the_action_check(env: ServiceEnv) -> None:
    # The page says why there are no items, in the action check's words; it never says
    # "No action items were found" about a section the check found empty.
    text = "# Outage\n\n## Action items\n\n- None yet\n"
    empty = seed(env, "21", text=text, findings=[
        finding("actions.empty-section", text, "Action items", category="action-items")])
    page = signed_in(env.app, "eli").get(page_url(empty)).get_data(as_text=True)
    assert "The action-items section lists no items yet." in page
    assert "No action items were found." not in page
    bare = "# Outage\n\nThe cache expired.\n"
    missing = seed(env, "22", text=bare, findings=[
        finding("actions.missing-section", bare, "#", category="action-items")])
    page = signed_in(env.app, "eli").get(page_url(missing)).get_data(as_text=True)
    assert "No action-items section was found." in page
    asks = seed(env, "23", text="## Action items\n- Retrain the engineer\n", action_items=[
        {"text": "Retrain the engineer", "owner": None, "tracking": [], "due": None,
         "lesson_home": None, "asks_people": True}])
    page = signed_in(env.app, "eli").get(page_url(asks)).get_data(as_text=True)
    assert "a change to the system (it asks people to change)" in page


def test_incident_urls_round_trip_and_the_unquoted_form_is_found(env: ServiceEnv) -> None:
    ids = [
        seed(env, "3", title="Plain GitHub"),
        seed(env, "4", site="https://ghe.example.com/api/v3", project="acme/ops.v2",
             title="Enterprise"),
        seed(env, "OPS-7", tracker="jira", project="OPS", site="https://acme.atlassian.net",
             title="Jira"),
    ]
    client = signed_in(env.app, "eli")
    with env.app.test_request_context():
        from flask import url_for

        urls = [url_for("dashboard.incident", incident_id=i) for i in ids]
    for incident_id, url in zip(ids, urls, strict=True):
        assert url == page_url(incident_id)
        r = client.get(url)
        assert r.status_code == 200, url
    # The worker's comment links f"{base_url}/incidents/{ref.id}" without quoting '#': a
    # browser keeps "#3" as the fragment and asks for the id without it.
    r = client.get("/incidents/" + ids[0])
    assert r.status_code == 404
    body = r.get_data(as_text=True)
    assert f'href="{urls[0]}"' in body  # the project's incidents, to pick from
    assert "data-incident-not-found" in body and "/static/dashboard.js" in body
    assert client.get("/static/dashboard.js").status_code == 200
    assert client.get("/incidents/github:nowhere").status_code == 404


def test_highlight_cuts_overlapping_and_adjacent_spans() -> None:
    text = "abcdefghij"
    spans = [
        Span(1, 0, 4, "warning", "one"),
        Span(2, 2, 6, "error", "two"),
        Span(3, 6, 8, "info", "three"),
    ]
    segments = highlight(text, spans)
    assert "".join(s.text for s in segments) == text
    assert [(s.text, s.findings, s.severity) for s in segments] == [
        ("ab", (1,), "warning"),
        ("cd", (1, 2), "error"),
        ("ef", (2,), "error"),
        ("gh", (3,), "info"),
        ("ij", (), ""),
    ]
    assert [s.starts for s in segments] == [(1,), (2,), (), (3,), ()]
    assert highlight("", []) == []

    class F:
        def __init__(self, start, end, text):
            self.id, self.start, self.end, self.text = 1, start, end, text
            self.severity, self.message, self.decision = "warning", "m", None

    assert locate(text, F(0, 3, "abc")) == Span(1, 0, 3, "warning", "m")
    for bad in (F(None, None, ""), F(3, 3, ""), F(5, 99, "x"), F(0, 3, "xyz")):
        assert locate(text, bad) is None


# --- decisions --------------------------------------------------------------------------


def test_false_positive_needs_a_reason(env: ServiceEnv, seeded: dict) -> None:
    client = signed_in(env.app, "mia")
    fid = seeded["findings"][0]
    for reason in ("", "   "):
        r = post(client, f"/findings/{fid}/false-positive", reason=reason)
        assert r.status_code == 400
        assert "Say why this is a false positive" in r.get_data(as_text=True)
    assert all(f.decision is None for f in findings_of(env, seeded["incident"]))
    assert jobs(env) == []
    # Nothing to undo, and a finding that does not exist.
    assert post(client, f"/findings/{fid}/undo").status_code == 409
    assert post(client, "/findings/999999/accept").status_code == 404


def test_a_flag_from_an_earlier_check_is_decided_on_the_latest_one(
    env: ServiceEnv, seeded: dict
) -> None:
    # Every decision queues a re-check that stores new finding ids, so a page loaded a
    # moment ago names the previous ones: the decision goes to the same flag (same rule
    # and sentence) in the latest check; a flag the latest check no longer has is refused.
    old_forgot, old_should = seeded["findings"]
    with db(env) as session:
        incident = session.get(Incident, seeded["incident"])
        previous = {f.id: f for f in queries.latest_analysis(session, incident.id).findings}
        queries.save_analysis(
            session, incident_id=incident.id, postmortem_id=incident.postmortems[0].id,
            text=BLAME_PM, format="markdown", pack_name="default", pack_version="test",
            model="blank", verdict="needs-review", action_items=[], summary={},
            findings=[finding("blame.omission", BLAME_PM, "forgot",
                              fingerprint=previous[old_forgot].fingerprint)],
        )
    [new_forgot] = findings_of(env, seeded["incident"])
    client = signed_in(env.app, "mia")
    r = post(client, f"/findings/{old_forgot}/accept")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"#finding-{new_forgot.id}")
    assert [f.decision for f in findings_of(env, seeded["incident"])] == ["accepted"]
    r = post(client, f"/findings/{old_should}/accept")
    assert r.status_code == 409 and "no longer in the postmortem" in r.get_data(as_text=True)
    assert len(jobs(env)) == 1


def test_recheck_now_queues_a_job_and_is_audited(env: ServiceEnv, seeded: dict) -> None:
    r = post(signed_in(env.app, "mia"), page_url(seeded["incident"]) + "/recheck")
    assert r.status_code == 302
    [job] = jobs(env)
    assert job.kind == "check" and job.incident_id == seeded["incident"]
    assert job.payload == {"tracker": "github", "site": SITE, "project": REPO, "key": "7",
                           "reason": "dashboard"}


def _close_flagged(e: ServiceEnv) -> IncidentRef:
    fake = e.fake
    pm = fake.add_issue(REPO, "Postmortem", BLAME_PM, labels=["postmortem"])
    number = fake.add_issue(REPO, "Checkout down", f"Postmortem: #{pm}", labels=["incident"])
    fake.close_issue(REPO, number)
    ref = IncidentRef("github", fake.url, REPO, str(number))
    assert e.service.check_now(ref).status == "needs-review"
    return ref


def _comment(e: ServiceEnv, ref: IncidentRef) -> str:
    [body] = [c["body"] for c in e.fake.comments(REPO, int(ref.key)) if GITHUB_MARKER in c["body"]]
    return body


def _settled(e: ServiceEnv) -> bool:
    return all(j.status in ("done", "failed") for j in jobs(e))


def test_decisions_rewrite_the_ticket_comment(gh_env: ServiceEnv) -> None:
    e = gh_env
    ref = _close_flagged(e)
    before = _comment(e, ref)
    assert "“forgot”" in before and "“should have checked”" in before
    fids = {f.rule: f.id for f in findings_of(e, ref.id)}
    client = signed_in(e.app, "mia")
    assert post(client, f"/findings/{fids['blame.omission']}/accept").status_code == 302
    r = post(client, f"/findings/{fids['blame.counterfactual-modal']}/false-positive",
             reason="Quoted from the on-call runbook, not about a person.")
    assert r.status_code == 302

    def rewritten() -> bool:
        return _settled(e) and "should have checked" not in _comment(e, ref)

    wait_until(rewritten, what="the false positive to drop off the comment")
    after = _comment(e, ref)
    assert "“forgot”" in after  # accepted flags stay
    assert "postmortem:needs-review" in e.fake.labels(REPO, int(ref.key))
    decided = {f.rule: f.decision for f in findings_of(e, ref.id)}  # carried to the re-check
    assert decided == {"blame.omission": "accepted",
                       "blame.counterfactual-modal": "false-positive"}
    page = client.get(page_url(ref.id)).get_data(as_text=True)
    assert "Quoted from the on-call runbook" in page and "1 flag" not in page

    # Undo brings the flag back.
    fp = next(f.id for f in findings_of(e, ref.id) if f.decision == "false-positive")
    assert post(client, f"/findings/{fp}/undo").status_code == 302
    wait_until(lambda: _settled(e) and "should have checked" in _comment(e, ref),
               what="the flag to return")


def test_waiver_with_expiry_lift_and_without_expiry(gh_env: ServiceEnv) -> None:
    e = gh_env
    ref = _close_flagged(e)
    client = signed_in(e.app, "mia")
    last_day = (NOW + timedelta(days=7)).date().isoformat()
    url = page_url(ref.id)
    r = post(client, f"{url}/waiver", reason="A game-day drill; see @ravi's notes.",
             until=last_day)
    assert r.status_code == 302
    wait_until(lambda: _settled(e) and "waived" in _comment(e, ref), what="the waived comment")
    body = _comment(e, ref)
    assert "An incident manager waived the postmortem check" in body
    assert f"until {last_day}" in body and "A game-day drill" in body
    assert "@\u200bravi" in body  # the reason does not notify anyone
    assert "mia" not in body and " you" not in body.lower()
    assert "forgot" not in body  # no flags listed under a waiver
    labels = e.fake.labels(REPO, int(ref.key))
    assert "postmortem:ok" in labels and "postmortem:needs-review" not in labels
    page = client.get(url).get_data(as_text=True)
    assert "The check is waived" in page and f"until {last_day}" in page
    assert "forgot" in page  # the postmortem read before the waiver stays on the page
    assert row_ids(client.get("/incidents?status=waived").get_data(as_text=True)) == [ref.id]

    assert post(client, f"{url}/waiver/lift").status_code == 302
    wait_until(lambda: _settled(e) and "postmortem:needs-review" in e.fake.labels(
        REPO, int(ref.key)), what="the check to come back")
    assert "“forgot”" in _comment(e, ref)

    assert post(client, f"{url}/waiver", reason="Duplicate of #1").status_code == 302
    wait_until(lambda: _settled(e) and "Nothing more is needed here." in _comment(e, ref),
               what="the waiver without expiry")
    assert "until" not in _comment(e, ref)


def test_an_expired_waiver_is_ignored(gh_env: ServiceEnv) -> None:
    e = gh_env
    ref = _close_flagged(e)
    with db(e) as session:
        queries.set_waiver(session, ref.id, "mia", "old drill", NOW - timedelta(minutes=1))
    assert e.service.check_now(ref).status == "needs-review"
    assert "waived" not in _comment(e, ref) and "“forgot”" in _comment(e, ref)
    page = signed_in(e.app, "eli").get(page_url(ref.id)).get_data(as_text=True)
    assert "A waiver expired" in page


def test_waiver_form_errors(env: ServiceEnv, seeded: dict) -> None:
    client = signed_in(env.app, "mia")
    url = page_url(seeded["incident"]) + "/waiver"
    yesterday = (NOW - timedelta(days=2)).date().isoformat()
    for form, message in (
        ({"reason": " "}, "A waiver needs a reason"),
        ({"reason": "drill", "until": yesterday}, "in the past"),
        ({"reason": "drill", "until": "next week"}, "must be a date"),
    ):
        r = post(client, url, **form)
        assert r.status_code == 400 and message in r.get_data(as_text=True), form
    assert post(client, "/incidents/github:nowhere/waiver", reason="x").status_code == 404
    assert post(client, page_url(seeded["incident"]) + "/waiver/lift").status_code == 409
    assert jobs(env) == []
    with db(env) as session:
        assert session.get(Incident, seeded["incident"]).waived_reason is None


def test_waived_comment_names_no_one_and_notifies_no_one() -> None:
    from connector.base import Incident as TrackerIncident
    from rules.incident_policy import IncidentPolicy
    from worker.check import waived_comment

    def incident(tracker: str) -> TrackerIncident:
        ref = IncidentRef(tracker, "https://x.example", "OPS", "OPS-1")
        return TrackerIncident(ref, "t", "", "markdown", "closed", "")

    waiver = queries.Waiver("mia", "Drill;\nsee [~ravi] and @ravi", None)
    jira = waived_comment(incident("jira"), waiver, IncidentPolicy())
    assert "bq. Drill; see [\u200b~ravi] and @ravi" in jira
    assert "mia" not in jira and "Nothing more is needed here." in jira
    until = datetime(2030, 1, 2, tzinfo=UTC)  # exclusive: the last day is 2030-01-01
    github = waived_comment(incident("github"), queries.Waiver("mia", "@ravi", until),
                            IncidentPolicy())
    assert "> @\u200bravi" in github and "until 2030-01-01" in github
    assert github.endswith(GITHUB_MARKER)


def test_a_check_that_failed_before_reading_the_incident_is_listed(env: ServiceEnv) -> None:
    lost = f"github:{SITE}:{REPO}#404"
    with db(env) as session:
        job = queries.create_job(session, "check", lost, {
            "tracker": "github", "site": SITE, "project": REPO, "key": "404",
            "reason": "closed"})
        job.status, job.last_error = "failed", "GitHub answered 502 four times"
    client = signed_in(env.app, "mia")
    queue = client.get("/incidents").get_data(as_text=True)
    assert "Checks that failed before the incident could be read" in queue
    assert f'href="{page_url(lost)}"' in queue and "502 four times" in queue
    r = client.get(page_url(lost))
    assert r.status_code == 404 and "502 four times" in r.get_data(as_text=True)
    assert post(client, page_url(lost) + "/recheck").status_code == 302
    assert jobs(env)[0].payload == {"tracker": "github", "site": SITE, "project": REPO,
                                    "key": "404", "reason": "dashboard"}
    assert "Checks that failed" not in client.get("/incidents?status=ok").get_data(
        as_text=True)


# --- the audit log ----------------------------------------------------------------------


def test_audit_page_lists_who_what_when_why_newest_first(env: ServiceEnv, seeded: dict) -> None:
    client = signed_in(env.app, "mia")
    first, second = seeded["findings"]
    url = page_url(seeded["incident"])
    post(client, f"/findings/{first}/accept")
    post(client, f"/findings/{second}/false-positive", reason="Quotes the <runbook>.")
    post(client, f"{url}/waiver", reason="Tabletop drill")

    page = client.get("/audit").get_data(as_text=True)
    actions = re.findall(r"<td><code>([^<]+)</code></td>", page)
    assert actions == ["incident.waive", "finding.false-positive", "finding.accepted"]
    assert "Quotes the &lt;runbook&gt;." in page and "Tabletop drill" in page
    assert page.count("<td>mia</td>") == 3
    assert f'href="{url}#finding-{second}"' in page  # a finding links to its incident
    assert f'href="{url}"' in page

    filtered = client.get("/audit?action=incident.waive").get_data(as_text=True)
    assert re.findall(r"<td><code>([^<]+)</code></td>", filtered) == ["incident.waive"]
    nobody = client.get("/audit?actor=nobody").get_data(as_text=True)
    assert "<td><code>" not in nobody and "No entries match these filters." in nobody

    with db(env) as session:
        for n in range(60):
            queries.audit(session, "pmguard", "check", "incident", seeded["incident"],
                          detail={"verdict": "ok", "n": n})
    page = client.get("/audit?actor=pmguard").get_data(as_text=True)
    assert len(re.findall(r"<td><code>check</code></td>", page)) == 50
    assert "n: 59" in page and "n: 9<" not in page  # newest first
    assert 'href="/audit?page=2&amp;actor=pmguard"' in page
    page2 = client.get("/audit?actor=pmguard&page=2").get_data(as_text=True)
    assert len(re.findall(r"<td><code>check</code></td>", page2)) == 10

    assert signed_in(env.app, "eli").get("/audit").status_code == 403


def test_incident_page_shows_where_each_postmortem_was_read_from(gh_env: ServiceEnv) -> None:
    from dataclasses import replace

    from rules.incident_policy import PostmortemSources

    e = gh_env
    e.service.policy = replace(
        e.service.policy, postmortem_sources=PostmortemSources(github=("acme/postmortems",))
    )
    e.fake.add_repo("acme/postmortems")
    e.fake.add_file("acme/postmortems", "2026/checkout.md", BLAME_PM)
    pm = e.fake.add_issue(REPO, "Postmortem", BLAME_PM, labels=["postmortem"])
    blob = f"{e.fake.web_url}/acme/postmortems/blob/main/2026/checkout.md"
    body = f"Postmortem: #{pm}\nPIR: acme/secret#1\nPIR: {blob}"
    number = e.fake.add_issue(REPO, "Checkout down", body, labels=["incident"])
    e.fake.close_issue(REPO, number)
    ref = IncidentRef("github", e.fake.url, REPO, str(number))
    assert e.service.check_now(ref).status == "needs-review"
    page = signed_in(e.app, "mia").get(page_url(ref.id)).get_data(as_text=True)
    assert "read it from repository acme/ops" in page
    assert "read it from repository acme/postmortems" in page


def test_lint_json_sarif_dashboard_and_comment_agree(env: ServiceEnv) -> None:
    # Issue 11: one postmortem, every rendering. The same findings (rule, line) in the lint
    # text, the JSON and the SARIF; the same items on the dashboard; and the comment keeps
    # the blame sentence, the systems question and what the items lack apart.
    from check import comment
    from check.verdict import check
    from connector.base import Comment, Incident, Postmortem, PostmortemRef
    from nlp.analysis import analyse, default_pack
    from nlp.report import to_json, to_sarif, to_text
    from rules.incident_policy import IncidentPolicy

    text = (
        "# Outage\n\nDana carelessly deleted the wrong volume.\n\n"
        "## What we're doing about it\n\n"
        "- Retrain the engineer on volume handling\n"
        "- Kai to attend storage training (OPS-7)\n"
    )
    analysis = analyse(text, model="blank")
    results = [("pm.md", text, analysis)]
    expected = sorted((f.rule, f.line) for f in analysis.findings)
    assert ("actions.systems-action", 5) in expected
    lint = to_text(results)
    assert sorted(
        (m.group(2), int(m.group(1)))
        for m in re.finditer(r"^pm\.md:(\d+):\d+: \w+ \[([\w.-]+)\]", lint, re.M)
    ) == expected
    as_json = to_json(results)["files"][0]
    assert sorted((f["rule"], f["line"]) for f in as_json["findings"]) == expected
    assert [i["asks_people"] for i in as_json["action_items"]] == [True, True]
    sarif = to_sarif(results, default_pack())["runs"][0]["results"]
    assert sorted(
        (r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in sarif
    ) == expected

    incident_id = seed(
        env, "31", text=text,
        findings=[f.to_dict() for f in analysis.findings],
        action_items=[i.to_dict() for i in analysis.action_items],
    )
    page = html.unescape(
        signed_in(env.app, "eli").get(page_url(incident_id)).get_data(as_text=True)
    )
    for f in analysis.findings:
        assert f.message in page
    rows = re.findall(r"<tr>\s*<td>(.*?)</tr>", page, re.S)
    assert len(rows) == len(analysis.action_items) == 2
    assert "No action items were found" not in page

    ref = IncidentRef("github", "https://api.github.com", "acme/ops", "31")
    inc = Incident(
        ref=ref, title="Outage", body="Postmortem: #12", body_format="markdown",
        state="closed", url="https://github.com/acme/ops/issues/31", labels=("incident",),
        severity=None, comments=(Comment("1", "ana", "closing"),), linked=(),
    )
    pm = Postmortem(PostmortemRef("issue", "acme/ops#12"), "PM", text, "markdown",
                    "https://github.com/acme/ops/issues/12")
    verdict = check(inc, [pm], IncidentPolicy(), model="blank")
    body = comment.render(inc, verdict, IncidentPolicy())
    blame, _, actions = body.partition("What will change because of this incident:")
    assert "line 3" in blame and "carelessly" in blame
    assert "every action item asks people to change" in actions
    assert "2 of 2 ask people to change rather than the system (line 7, 8)" in actions
    assert "“#”" not in body
