"""Learning health: the figures (shares, days to postmortem, flags, overdue items) on data
we seed, the SVG charts (well-formed, labels escaped), and the page — which must never name
or count a person."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from store import queries as q
from store import users as store_users
from store.db import session_scope
from tests.service_env import ServiceEnv, make_settings
from tests.web_helpers import PASSWORD, cheap_hashing  # noqa: F401
from web import health
from web.admin import health_facts

SVG = "{http://www.w3.org/2000/svg}"
TODAY = date(2026, 3, 18)  # a Wednesday


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def item(owner: str | None = None, due: str | None = None, link: bool = False,
         done: bool | None = None) -> dict:
    return {"text": "x", "line": 1, "column": 1, "owner": owner, "due": due,
            "tracking": ["OPS-9"] if link else [], "done": done, "lesson_home": None}


# --- pure figures -----------------------------------------------------------------------


def test_item_facts() -> None:
    f = health.item_facts(item("@ana", "2026-03-01", True), TODAY)
    assert (f.has_owner, f.has_due, f.has_link, f.overdue) == (True, True, True, True)
    assert not health.item_facts(item(due="2026-03-01", done=True), TODAY).overdue
    assert not health.item_facts(item(due="2026-03-18"), TODAY).overdue  # due today
    unreadable = health.item_facts(item(owner="  ", due="next sprint"), TODAY)
    assert (unreadable.has_owner, unreadable.has_due, unreadable.overdue) == (False, False, False)


def test_buckets() -> None:
    assert health.bucket_start(TODAY, "week") == date(2026, 3, 16)  # Monday
    assert health.bucket_start(TODAY, "month") == date(2026, 3, 1)
    weeks = health.bucket_starts(TODAY, 90, "week")
    assert weeks[-1] == date(2026, 3, 16) and all(d.weekday() == 0 for d in weeks)
    assert weeks[0] <= TODAY - timedelta(days=89) < weeks[0] + timedelta(days=7)
    assert health.bucket_starts(TODAY, 90, "month") == [
        date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    assert health.bucket_label(date(2026, 3, 16), "week") == "16 Mar"
    assert health.bucket_label(date(2026, 3, 1), "month") == "Mar 2026"
    with pytest.raises(ValueError):
        health.bucket_start(TODAY, "fortnight")


def test_compute_shares_days_flags_and_overdue() -> None:
    facts = [
        # payments, this week: two incidents, one with a postmortem 3 days after closing.
        health.IncidentFacts("payments", at(date(2026, 3, 16)), True,
                             at(date(2026, 3, 19)), postmortems=1, flags=4,
                             items=(health.item_facts(item("@a", "2026-03-01", True), TODAY),
                                    health.item_facts(item(None, None, False), TODAY))),
        health.IncidentFacts("payments", at(date(2026, 3, 17)), False),
        # platform, a month earlier: a postmortem the same day, two flags over 2 postmortems.
        health.IncidentFacts("platform", at(date(2026, 2, 10)), True, at(date(2026, 2, 10), 18),
                             postmortems=2, flags=2,
                             items=(health.item_facts(item("@b", "2026-04-01"), TODAY),)),
        # Outside the 90 days: ignored.
        health.IncidentFacts("platform", at(date(2025, 11, 1)), True, at(date(2025, 11, 2)),
                             postmortems=1, flags=9),
    ]
    report = health.compute(facts, today=TODAY, days=90, size="week")
    assert report.groups == ("payments", "platform")  # most incidents first
    pay, plat = report.totals["payments"], report.totals["platform"]
    assert (pay.closed, pay.with_postmortem, pay.postmortem_share) == (2, 1, 0.5)
    assert pay.median_days == 3.0 and pay.flags_per_postmortem == 4.0
    assert (pay.items, pay.owner_share, pay.due_share, pay.link_share, pay.overdue) == (
        2, 0.5, 0.5, 0.5, 1)
    assert plat.closed == 1 and plat.median_days == 0.25 and plat.flags_per_postmortem == 1.0
    assert plat.overdue == 0  # due in April
    assert report.total.closed == 3 and report.total.overdue == 1
    # The week buckets: payments' incidents land in the last one, platform's in February's.
    last = report.by_group["payments"][-1]
    assert last.closed == 2 and report.by_group["payments"][0].closed == 0
    feb = report.buckets.index(date(2026, 2, 9))
    assert report.by_group["platform"][feb].closed == 1
    assert report.overall[feb].postmortem_share == 1.0
    assert report.overall[0].postmortem_share is None  # nothing to measure: no figure
    months = health.compute(facts, today=TODAY, days=180, size="month")
    assert months.total.closed == 4 and len(months.buckets) == 7


# --- SVG --------------------------------------------------------------------------------


def test_line_chart_is_well_formed_with_escaped_labels_and_gaps() -> None:
    svg = health.line_chart(
        "c1", "Share <&> of \"things\"", ["1 Mar", "8 Mar", "15 Mar"],
        [health.Series("<script>alert(1)</script> & team", [0.5, None, 1.0]),
         health.Series("All", [0.2, 0.4, 0.6], dashed=True)],
        is_percent=True,
    )
    root = ET.fromstring(str(svg))
    assert root.tag == f"{SVG}svg"
    assert root.find(f"{SVG}title").text == 'Share <&> of "things"'
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "<script>alert(1)</script> & team" in [t.find(f"{SVG}title").text for t in
                                                  root.iter(f"{SVG}text") if
                                                  t.find(f"{SVG}title") is not None]
    assert "100%" in texts and "0%" in texts
    # The gap splits the first series: no polyline for it (two lone points), one for "All".
    assert len(root.findall(f"{SVG}polyline")) == 1
    assert len(root.findall(f"{SVG}circle")) == 5
    assert "<script>" not in str(svg)


def test_empty_charts_say_so() -> None:
    root = ET.fromstring(str(health.line_chart("c2", "Nothing", ["a"], [health.Series("x",
                                                                                      [None])])))
    assert any(t.text == "No data in this period" for t in root.iter(f"{SVG}text"))
    root = ET.fromstring(str(health.bar_chart("c3", "Overdue", [], [])))
    assert any(t.text == "No data in this period" for t in root.iter(f"{SVG}text"))


def test_bar_chart() -> None:
    root = ET.fromstring(str(health.bar_chart("c4", "Overdue", ["a & b", "c"], [3, 0])))
    assert len(root.findall(f"{SVG}rect")) == 2
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "value"] == ["3", "0"]


# --- from the store, and the page -------------------------------------------------------

PEOPLE = ("Dana Whitfield", "@dwhitfield", "rosa-reviewer", "kim_oncall")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ServiceEnv]:
    e = ServiceEnv(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", ""), "h")
    with session_scope(e.service.sessions) as db:
        store_users.create_user(db, "viewer-eng", PASSWORD, "engineer")
        store_users.create_user(db, "rosa-reviewer", PASSWORD, "incident_manager")
        store_users.create_user(db, "kim_oncall", PASSWORD, "admin")
    yield e
    e.stop()


def seed(env: ServiceEnv, now: datetime) -> None:
    """Three incidents closed in the last weeks, people's names wherever the store has them:
    action-item owners, reviewers' decisions, a waiver, the postmortem text."""
    with session_scope(env.service.sessions) as db:
        a = q.upsert_incident(db, "github", "https://api.github.com", "acme/shop", "1",
                              closed_at=now - timedelta(days=10), verdict="needs-review",
                              team="checkout", title="Dana Whitfield's deploy")
        pm = q.link_postmortem(db, a, kind="issue", locator="acme/shop#2", title="Review")
        analysis = q.save_analysis(
            db, a.id, pm.id, "Dana Whitfield forgot the flag.", "markdown", "default", "v",
            "blank", "needs-review",
            [{"rule": "blame.omission", "text": "forgot", "sentence": "s1"},
             {"rule": "blame.hindsight", "text": "obviously", "sentence": "s2"},
             {"rule": "blame.judgement", "text": "careless", "sentence": "s3"},
             {"rule": "actions.missing-owner", "text": "x", "sentence": "s4"}],
            [item("@dwhitfield", (now - timedelta(days=3)).date().isoformat(), True),
             item("Dana Whitfield", None, False)],
            {},
        )
        analysis.created_at = now - timedelta(days=8)  # two days after closing
        q.decide_finding(db, analysis.findings[1].id, "false-positive", "rosa-reviewer", "quote")
        b = q.upsert_incident(db, "jira", "https://ops.example.net", "OPS", "OPS-1",
                              closed_at=now - timedelta(days=20), verdict="missing",
                              team="checkout", waived_by="kim_oncall")
        assert b.id
        q.upsert_incident(db, "jira", "https://ops.example.net", "OPS", "OPS-2",
                          closed_at=now - timedelta(days=3), verdict=None, team="checkout")
        q.upsert_incident(db, "jira", "https://ops.example.net", "OPS", "OPS-3",
                          closed_at=now - timedelta(days=400), verdict="ok", team="old")


def test_facts_from_the_store(env: ServiceEnv) -> None:
    now = env.service.now()
    seed(env, now)
    since = now - timedelta(days=90)
    with session_scope(env.service.sessions) as db:
        facts = health_facts(db, since, "team", now.date())
    # OPS-2 is exempt (no verdict), OPS-3 closed too long ago.
    assert sorted(f.closed_at for f in facts) == sorted(
        [now - timedelta(days=10), now - timedelta(days=20)])
    report = health.compute(facts, today=now.date(), days=90, size="week")
    checkout = report.totals["checkout"]
    assert (checkout.closed, checkout.postmortem_share) == (2, 0.5)
    assert checkout.median_days == pytest.approx(2.0)
    # Open language flags: 3 stored, 1 dismissed as a false positive, the action-item check
    # counted apart -> 2 flags on 1 postmortem.
    assert checkout.flags_per_postmortem == 2.0
    assert (checkout.items, checkout.owner_share, checkout.link_share, checkout.overdue) == (
        2, 1.0, 0.5, 1)
    with session_scope(env.service.sessions) as db:
        by_project = health_facts(db, since, "project", now.date())
    assert {f.group for f in by_project} == {"acme/shop (github)", "OPS (jira)"}


def _sign_in(app: Flask, username: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert client.post("/login", data={"username": username, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    return client


@pytest.mark.parametrize("query", ["", "?group=project&days=180&bucket=month",
                                   "?group=nobody&days=7&bucket=year"])
def test_page_has_readable_charts_and_names_no_one(env: ServiceEnv, query: str) -> None:
    seed(env, env.service.now())
    with session_scope(env.service.sessions) as db:
        usernames = [u.username for u in store_users.list_users(db)]
    client = _sign_in(env.app, "viewer-eng")
    r = client.get(f"/health/learning{query}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 5
    for svg in svgs:
        ET.fromstring(svg)  # well-formed XML
    assert "Closed incidents with a linked postmortem" in html
    assert 'id="table-chart-postmortems"' in html  # the text table behind the chart
    # No person anywhere in the page: not the people in postmortems and action items, not the
    # reviewers or the waiver's author, not any account. The one exception is the site
    # header's "signed in as" of base.html (the viewer's own name, shown on every page):
    # cut it out, then check that it holds nothing but the viewer.
    header = re.search(r'<header class="site">.*?</header>', html, re.S).group(0)
    body = html.replace(header, "")
    for name in (*PEOPLE, *usernames):
        assert name.casefold() not in body.casefold(), name
    assert [n for n in (*PEOPLE, *usernames) if n in header] == ["viewer-eng"]
    if "project" in query:
        assert "acme/shop (github)" in html


def test_selected_options_fall_back_to_defaults(env: ServiceEnv) -> None:
    client = _sign_in(env.app, "viewer-eng")
    html = client.get("/health/learning?days=33&bucket=decade").get_data(as_text=True)
    assert '<option value="90" selected>' in html
    assert '<option value="week" selected>' in html
