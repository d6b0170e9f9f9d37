"""GitHub connector: webhook parsing, and GitHubTracker (real PyGithub) against the fake."""

from __future__ import annotations

import base64
import socket
import time
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connector.base import (
    CLOSED,
    INCIDENT_EDITED,
    RECHECK,
    REOPENED,
    IncidentRef,
    NotFound,
    PostmortemRef,
    Tracker,
    TrackerError,
)
from connector.github import GitHubTracker, parse_event, retry_after
from tests.fakes.github import FakeGitHub, fake_github  # noqa: F401  (fixture)

SITE = "https://api.github.com"
REPO = "acme/web"
MARKER = "<!-- pmguard:v1 -->"


# ---- parse_event ------------------------------------------------------------------------


def delivery(
    action: str,
    *,
    state: str = "closed",
    labels: tuple[str, ...] = ("incident",),
    sender: str = "alice",
    sender_type: str = "User",
    comment: str | None = None,
    changes: dict | None = None,
    installation: int | None = None,
    pull_request: bool = False,
    state_reason: str | None = "completed",
) -> dict:
    """A small delivery shaped like the octokit examples: the fields parse_event reads."""
    api = f"{SITE}/repos/{REPO}"
    issue: dict = {
        "url": f"{api}/issues/12",
        "html_url": f"https://github.com/{REPO}/issues/12",
        "id": 1,
        "number": 12,
        "title": "Checkout down",
        "user": {"login": "alice", "id": 1, "type": "User"},
        "labels": [{"id": i, "name": n, "color": "ededed"} for i, n in enumerate(labels)],
        "state": state,
        "state_reason": state_reason if state == "closed" else None,
        "body": "It broke.",
    }
    if pull_request:
        issue["pull_request"] = {"url": f"{api}/pulls/12"}
    payload: dict = {
        "action": action,
        "issue": issue,
        "repository": {"id": 9, "name": "web", "full_name": REPO, "private": False},
        "sender": {"login": sender, "id": 2, "type": sender_type},
    }
    if comment is not None:
        payload["comment"] = {"id": 77, "body": comment, "user": payload["sender"]}
    if changes is not None:
        payload["changes"] = changes
    if installation is not None:
        payload["installation"] = {"id": installation, "node_id": "X"}
    return payload


def test_closed_carries_labels_reason_installation_and_actor() -> None:
    payload = delivery("closed", labels=("incident", "sev1"), installation=27216354)
    event = parse_event("issues", payload, site=SITE + "/")
    assert event is not None
    assert event.kind == CLOSED
    assert event.ref == IncidentRef("github", SITE, REPO, "12")
    assert event.labels == ("incident", "sev1")
    assert event.state_reason == "completed"
    assert event.installation_id == 27216354
    assert event.actor == "alice"


def test_closed_without_state_reason_or_installation() -> None:
    payload = delivery("closed", state_reason=None)
    del payload["issue"]["state_reason"]  # 2017-era deliveries have no such key
    event = parse_event("issues", payload, site=SITE)
    assert event is not None and event.kind == CLOSED
    assert event.state_reason is None and event.installation_id is None


def test_closed_by_a_bot_still_counts() -> None:
    event = parse_event(
        "issues", delivery("closed", sender="stale[bot]", sender_type="Bot"), site=SITE
    )
    assert event is not None and event.kind == CLOSED


def test_reopened() -> None:
    event = parse_event("issues", delivery("reopened", state="open"), site=SITE)
    assert event is not None and event.kind == REOPENED


@pytest.mark.parametrize("state", ["open", "closed"])
def test_body_edit_is_incident_edited_whatever_the_state(state: str) -> None:
    payload = delivery("edited", state=state, changes={"body": {"from": "old"}})
    event = parse_event("issues", payload, site=SITE)
    assert event is not None and event.kind == INCIDENT_EDITED


def test_title_only_edit_is_ignored() -> None:
    payload = delivery("edited", changes={"title": {"from": "Old title"}})
    assert parse_event("issues", payload, site=SITE) is None


def test_edit_without_usable_changes_is_assumed_to_touch_the_body() -> None:
    # The octokit example carries "changes": {}; missing a postmortem edit costs more than
    # one extra check.
    assert parse_event("issues", delivery("edited", changes={}), site=SITE).kind == INCIDENT_EDITED


def test_our_own_edits_and_labels_are_ignored() -> None:
    edited = delivery("edited", sender="PMGuard[bot]", changes={"body": {"from": ""}})
    labeled = delivery("labeled", sender="pmguard[bot]")
    assert parse_event("issues", edited, site=SITE, bot_login="pmguard[bot]") is None
    assert parse_event("issues", labeled, site=SITE, bot_login="pmguard[bot]") is None


@pytest.mark.parametrize("action", ["labeled", "unlabeled"])
def test_label_change_matters_only_once_closed(action: str) -> None:
    closed = parse_event("issues", delivery(action), site=SITE)
    assert closed is not None and closed.kind == INCIDENT_EDITED
    assert parse_event("issues", delivery(action, state="open"), site=SITE) is None


@pytest.mark.parametrize("action", ["opened", "assigned", "deleted", "locked", "transferred"])
def test_other_issue_actions_need_nothing(action: str) -> None:
    assert parse_event("issues", delivery(action), site=SITE) is None


@pytest.mark.parametrize("state", ["open", "closed"])
@pytest.mark.parametrize("action", ["created", "edited"])
def test_recheck_command(state: str, action: str) -> None:
    payload = delivery(
        action, state=state, comment="Thanks!\n\n  /pmguard recheck  \n", sender="bob"
    )
    event = parse_event("issue_comment", payload, site=SITE)
    assert event is not None and event.kind == RECHECK
    assert event.actor == "bob" and event.ref.key == "12"


@pytest.mark.parametrize(
    "text", ["> /pmguard recheck", "please `/pmguard recheck` later", "/pmguard rechecks"]
)
def test_quoted_or_inline_recheck_is_not_a_command(text: str) -> None:
    event = parse_event("issue_comment", delivery("created", comment=text), site=SITE)
    assert event is not None and event.kind == INCIDENT_EDITED  # closed issue: a plain comment


def test_comment_on_closed_issue_may_add_a_link() -> None:
    payload = delivery("created", comment="Postmortem: #30")
    assert parse_event("issue_comment", payload, site=SITE).kind == INCIDENT_EDITED


def test_comment_on_open_issue_needs_nothing() -> None:
    payload = delivery("created", state="open", comment="Looking into it")
    assert parse_event("issue_comment", payload, site=SITE) is None


def test_deleted_comment_needs_nothing() -> None:
    assert parse_event("issue_comment", delivery("deleted", comment="x"), site=SITE) is None


def test_comments_by_our_bot_or_any_bot_are_ignored() -> None:
    ours = delivery("created", comment=f"{MARKER}\n/pmguard recheck", sender="PMGuard-Bot")
    other = delivery("created", comment="/pmguard recheck", sender="ci[bot]", sender_type="Bot")
    assert parse_event("issue_comment", ours, site=SITE, bot_login="pmguard-bot") is None
    assert parse_event("issue_comment", other, site=SITE) is None


def test_pull_request_conversations_are_ignored() -> None:
    payload = delivery("created", comment="/pmguard recheck", pull_request=True)
    assert parse_event("issue_comment", payload, site=SITE) is None
    assert parse_event("issues", delivery("closed", pull_request=True), site=SITE) is None


@pytest.mark.parametrize(
    "event,payload",
    [
        ("ping", {"zen": "Keep it logically awesome.", "hook_id": 1, "hook": {}}),
        ("installation", {"action": "created", "installation": {"id": 1}}),
        ("installation_repositories", {"action": "added", "installation": {"id": 1}}),
        ("push", {"ref": "refs/heads/main"}),
        ("issues", {"action": "closed"}),  # no issue, no repository
        ("issues", {"action": "closed", "issue": {"number": 1}, "repository": None}),
        ("issues", []),
    ],
)
def test_irrelevant_or_malformed_deliveries(event: str, payload) -> None:
    assert parse_event(event, payload, site=SITE) is None


# ---- the tracker against the fake -------------------------------------------------------


def make_tracker(fake: FakeGitHub, **kwargs) -> GitHubTracker:
    kwargs.setdefault("token", fake.token)
    kwargs.setdefault("bot_login", fake.user)
    return GitHubTracker(fake.url, **kwargs)


def ref_for(fake: FakeGitHub, number: int, project: str = REPO) -> IncidentRef:
    return IncidentRef("github", fake.url, project, str(number))


@pytest.fixture
def gh(fake_github: FakeGitHub) -> FakeGitHub:  # noqa: F811
    fake_github.add_repo(REPO)
    return fake_github


def test_tracker_satisfies_the_protocol(gh: FakeGitHub) -> None:
    assert isinstance(make_tracker(gh), Tracker)


def test_credentials_are_required() -> None:
    with pytest.raises(ValueError):
        GitHubTracker(SITE)


def test_fetch_incident_with_comments_and_timeline_postmortems(gh: FakeGitHub) -> None:
    n = gh.add_issue(
        REPO,
        "Checkout down",
        "Payments failed.",
        labels=["incident", "sev2"],
        state="closed",
        user="alice",
        assignees=["bob", "carol"],
    )
    gh.add_comment(REPO, n, "Mitigated by rollback.", user="dave")
    gh.add_repo("acme/postmortems")
    pm = gh.add_issue("acme/postmortems", "PM: checkout", "## Summary", labels=["Postmortem"])
    note = gh.add_issue(REPO, "Unrelated follow-up", "see #1", labels=["bug"])
    pr = gh.add_issue(REPO, "Fix", "fixes #1", labels=["postmortem"], pull_request=True)
    for src_repo, src in (
        ("acme/postmortems", pm),
        (REPO, note),
        (REPO, pr),
        ("acme/postmortems", pm),
    ):
        gh.cross_reference(src_repo, src, REPO, n)

    incident = make_tracker(gh).fetch_incident(ref_for(gh, n))

    assert incident.title == "Checkout down" and incident.body == "Payments failed."
    assert incident.body_format == "markdown"
    assert incident.state == "closed" and incident.state_reason == "completed"
    assert incident.labels == ("incident", "sev2")
    assert incident.author == "alice" and incident.assignees == ("bob", "carol")
    assert incident.url == f"{gh.web_url}/{REPO}/issues/{n}"
    assert incident.closed_at is not None and incident.closed_at.tzinfo is not None
    assert [(c.author, c.body) for c in incident.comments] == [("dave", "Mitigated by rollback.")]
    assert incident.linked == (
        PostmortemRef(
            "issue", f"acme/postmortems#{pm}", f"{gh.web_url}/acme/postmortems/issues/{pm}"
        ),
    )
    assert incident.roster == ("alice", "bob", "carol", "dave")


def test_fetch_incident_with_a_custom_postmortem_label(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed", labels=["incident"])
    pm = gh.add_issue(REPO, "Review", "text", labels=["pir"])
    gh.cross_reference(REPO, pm, REPO, n)
    linked = make_tracker(gh, postmortem_label="PIR").fetch_incident(ref_for(gh, n)).linked
    assert [r.locator for r in linked] == [f"{REPO}#{pm}"]


def test_missing_issue_is_not_found(gh: FakeGitHub) -> None:
    with pytest.raises(NotFound, match="acme/web#99"):
        make_tracker(gh).fetch_incident(ref_for(gh, 99))


def test_upsert_comment_creates_once_then_edits_in_place(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed", labels=["incident"])
    tracker, ref = make_tracker(gh), ref_for(gh, n)

    first = tracker.upsert_comment(ref, MARKER, f"{MARKER}\nMissing a postmortem.")
    again = tracker.upsert_comment(ref, MARKER, f"{MARKER}\nMissing a postmortem.")
    assert gh.calls("PATCH") == []  # unchanged: no PATCH, no notification
    edited = tracker.upsert_comment(ref, MARKER, f"{MARKER}\nThanks, it looks good.")

    assert first == again == edited
    comments = gh.comments(REPO, n)
    assert len(comments) == 1
    assert comments[0]["id"] == int(first) and comments[0]["user"] == gh.user
    assert comments[0]["body"] == f"{MARKER}\nThanks, it looks good."
    assert len(gh.calls("POST", r"/comments$")) == 1
    assert len(gh.calls("PATCH", rf"/issues/comments/{first}$")) == 1


def test_upsert_comment_finds_the_marker_on_a_later_page(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed")
    for i in range(6):
        gh.add_comment(REPO, n, f"chatter {i}", user="erin")
    cid = gh.add_comment(REPO, n, f"{MARKER}\nold", user=gh.user)
    assert make_tracker(gh, per_page=5).upsert_comment(ref_for(gh, n), MARKER, "new") == str(cid)
    assert len(gh.comments(REPO, n)) == 7
    assert gh.comments(REPO, n)[-1]["body"] == "new"


def test_upsert_comment_prefers_the_bots_own_comment(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed")
    gh.add_comment(REPO, n, f"quoting the bot: {MARKER}", user="frank")
    ours = gh.add_comment(REPO, n, f"{MARKER} v1", user=gh.user)
    assert make_tracker(gh).upsert_comment(ref_for(gh, n), MARKER, f"{MARKER} v2") == str(ours)
    assert [c["body"] for c in gh.comments(REPO, n)] == [
        f"quoting the bot: {MARKER}",
        f"{MARKER} v2",
    ]


def test_a_duplicate_left_by_a_lost_create_is_removed_and_the_oldest_edited(
    gh: FakeGitHub,
) -> None:
    # A POST that timed out but landed after the retry looked leaves two bot comments;
    # before, later checks edited only the first and the second went stale for good.
    n = gh.add_issue(REPO, "Down", state="closed")
    first = gh.add_comment(REPO, n, f"{MARKER} v1", user=gh.user)
    gh.add_comment(REPO, n, "a person's reply", user="erin")
    gh.add_comment(REPO, n, f"{MARKER} v1", user=gh.user)
    assert make_tracker(gh).upsert_comment(ref_for(gh, n), MARKER, f"{MARKER} v2") == str(first)
    assert [c["body"] for c in gh.comments(REPO, n)] == [f"{MARKER} v2", "a person's reply"]


def test_set_verdict_labels_touches_only_its_own(gh: FakeGitHub) -> None:
    n = gh.add_issue(
        REPO, "Down", state="closed", labels=["incident", "Postmortem:Missing", "team-payments"]
    )
    tracker, ref = make_tracker(gh), ref_for(gh, n)
    verdicts = ["postmortem:missing", "postmortem:needs-review", "postmortem:ok"]

    tracker.set_verdict_labels(ref, "postmortem:ok", [v for v in verdicts if v != "postmortem:ok"])
    assert gh.labels(REPO, n) == ["incident", "team-payments", "postmortem:ok"]
    assert gh.calls("PUT") == []  # never replaces the whole set
    assert len(gh.calls("DELETE")) == 1  # only the label that was there

    gh.requests.clear()
    tracker.set_verdict_labels(ref, "postmortem:ok", [v for v in verdicts if v != "postmortem:ok"])
    assert [m for m, _, _ in gh.requests] == ["GET"]  # already right: nothing written


def test_set_verdict_labels_survives_a_concurrent_removal(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed", labels=["postmortem:missing"])
    gh.fail("DELETE", r"/labels/", 404, body={"message": "Label does not exist"})
    make_tracker(gh).set_verdict_labels(ref_for(gh, n), "postmortem:ok", ["postmortem:missing"])
    assert "postmortem:ok" in gh.labels(REPO, n)


def test_reopen(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed")
    make_tracker(gh).reopen(ref_for(gh, n))
    issue = gh.issue(REPO, n)
    assert issue["state"] == "open" and issue["state_reason"] == "reopened"
    assert issue["closed_at"] is None
    assert [(m, p) for m, p, _ in gh.requests] == [("PATCH", f"/repos/{REPO}/issues/{n}")]


def test_incidents_linking_a_postmortem(gh: FakeGitHub) -> None:
    pm = gh.add_issue(REPO, "PM", "text", labels=["postmortem"])
    a = gh.add_issue(REPO, "Down A", f"Postmortem: #{pm}", state="closed")
    gh.add_repo("acme/api")
    b = gh.add_issue("acme/api", "Down B", f"Postmortem: {REPO}#{pm}", state="closed")
    pr = gh.add_issue(REPO, "Fix", f"see #{pm}", pull_request=True)
    for repo, src in ((REPO, a), ("acme/api", b), (REPO, pr), (REPO, a)):
        gh.cross_reference(repo, src, REPO, pm)
    refs = make_tracker(gh).incidents_linking(ref_for(gh, pm))
    assert refs == [ref_for(gh, a), ref_for(gh, b, "acme/api")]


def test_a_postmortem_kept_as_a_sub_issue_is_linked(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed", labels=["incident"])
    gh.add_repo("acme/postmortems")
    pm = gh.add_issue("acme/postmortems", "PM: checkout", "text", labels=["postmortem"])
    task = gh.add_issue(REPO, "Raise the pool size", "", labels=["follow-up"])
    gh.add_sub_issue(REPO, n, "acme/postmortems", pm)
    gh.add_sub_issue(REPO, n, REPO, task)
    linked = make_tracker(gh).fetch_incident(ref_for(gh, n)).linked
    assert [r.locator for r in linked] == [f"acme/postmortems#{pm}"]


def test_an_incident_without_sub_issues_costs_no_sub_issue_request(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed", labels=["incident"])
    make_tracker(gh).fetch_incident(ref_for(gh, n))
    assert not gh.calls("GET", r"/sub_issues")


def test_a_github_without_sub_issues_still_reads_the_incident(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed", labels=["incident"])
    pm = gh.add_issue(REPO, "PM", "text", labels=["postmortem"])
    gh.add_sub_issue(REPO, n, REPO, pm)
    gh.fail("GET", rf"/issues/{n}/sub_issues", 404, times=None)  # an older Enterprise
    incident = make_tracker(gh).fetch_incident(ref_for(gh, n))
    assert incident.linked == ()


def test_the_incident_a_sub_issue_postmortem_belongs_to_is_linking_it(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed", labels=["incident"])
    pm = gh.add_issue(REPO, "PM", "text", labels=["postmortem"])
    gh.add_sub_issue(REPO, n, REPO, pm)
    assert make_tracker(gh).incidents_linking(ref_for(gh, pm)) == [ref_for(gh, n)]


# ---- postmortems in issues and files ----------------------------------------------------


def test_fetch_postmortem_issue(gh: FakeGitHub) -> None:
    pm = gh.add_issue(REPO, "PM: checkout", "## What happened\n", labels=["postmortem"])
    got = make_tracker(gh).fetch_postmortem(PostmortemRef("issue", f"{REPO}#{pm}"), site=gh.url)
    assert (got.title, got.text, got.format) == ("PM: checkout", "## What happened\n", "markdown")
    assert got.url == f"{gh.web_url}/{REPO}/issues/{pm}" and got.updated_at is not None


def test_fetch_postmortem_file_at_a_ref_and_on_the_default_branch(gh: FakeGitHub) -> None:
    text = "# Postmortem\n\nThe deploy pipeline skipped the migration check. " * 40
    gh.add_file(REPO, "docs/pm/2024-05-01.md", text, ref="main")
    gh.add_file(REPO, "docs/pm/2024-05-01.md", "draft", ref="review")
    tracker = make_tracker(gh)

    main = tracker.fetch_postmortem(PostmortemRef("file", f"{REPO}:docs/pm/2024-05-01.md"), site="")
    review = tracker.fetch_postmortem(
        PostmortemRef("file", f"{REPO}:docs/pm/2024-05-01.md@review"), site=""
    )
    assert main.text == text and main.format == "markdown" and main.title == "2024-05-01.md"
    assert main.url == f"{gh.web_url}/{REPO}/blob/main/docs/pm/2024-05-01.md"
    assert review.text == "draft"


def test_fake_serves_base64_with_line_breaks(gh: FakeGitHub) -> None:
    gh.add_file(REPO, "pm.md", "x" * 500)
    data = requests.get(
        f"{gh.url}/repos/{REPO}/contents/pm.md", headers={"Authorization": f"token {gh.token}"}
    ).json()
    assert data["encoding"] == "base64" and "\n" in data["content"]
    assert base64.b64decode(data["content"]) == b"x" * 500


def test_blob_and_issue_urls_become_file_and_issue_refs(gh: FakeGitHub) -> None:
    gh.add_file(REPO, "docs/pm.md", "# From a blob URL\n", ref="0123abc")
    pm = gh.add_issue(REPO, "PM", "From an issue URL", labels=["postmortem"])
    tracker = make_tracker(gh)
    blob = f"{gh.web_url}/{REPO}/blob/0123abc/docs/pm.md#L3"
    issue_url = f"{gh.web_url}/{REPO}/issues/{pm}#issuecomment-1"

    from_blob = tracker.fetch_postmortem(PostmortemRef("url", blob, blob), site=gh.url)
    from_issue = tracker.fetch_postmortem(PostmortemRef("url", issue_url, issue_url), site="")
    assert from_blob.text == "# From a blob URL\n"
    assert from_blob.ref == PostmortemRef("file", f"{REPO}:docs/pm.md@0123abc", blob)
    assert from_issue.text == "From an issue URL"
    assert from_issue.ref.locator == f"{REPO}#{pm}"


def test_blob_urls_on_an_enterprise_host() -> None:
    with FakeGitHub(prefix="/api/v3") as ghe:
        ghe.add_repo("ops/handbook")
        ghe.add_file("ops/handbook", "postmortems/db.md", "# DB outage\n")
        assert ghe.url.endswith("/api/v3")
        tracker = GitHubTracker(ghe.url, token=ghe.token)
        url = f"{ghe.web_url}/ops/handbook/blob/main/postmortems/db.md"
        assert (
            tracker.fetch_postmortem(PostmortemRef("url", url, url), site="").text
            == "# DB outage\n"
        )
        assert ghe.requests[-1][1] == "/repos/ops/handbook/contents/postmortems/db.md"


def test_github_dot_com_blob_urls_map_to_api_github_com() -> None:
    tracker = GitHubTracker(SITE, token="t")
    ref = tracker.ref_from_url("https://github.com/acme/web/blob/v1.2/docs/pm.md")
    assert ref == PostmortemRef(
        "file", "acme/web:docs/pm.md@v1.2", "https://github.com/acme/web/blob/v1.2/docs/pm.md"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://confluence.example.com/display/OPS/PM",
        "https://github.com/acme/web/blob/main/docs/pm.md",  # another site than the fake
        "{web}/acme/web/pull/3",
        "{web}/acme/web/tree/main/docs",
        "{web}/acme/web",
    ],
)
def test_urls_github_cannot_read(gh: FakeGitHub, url: str) -> None:
    url = url.format(web=gh.web_url)
    with pytest.raises(TrackerError, match="not a file or issue") as err:
        make_tracker(gh).fetch_postmortem(PostmortemRef("url", url, url), site="")
    assert not err.value.transient
    assert gh.requests == []


def test_unreadable_files_say_why(gh: FakeGitHub) -> None:
    gh.add_file(REPO, "docs/pm/a.md", "a")
    gh.add_file(REPO, "docs/latin1.md", "café".encode("latin-1"))
    gh.add_file(REPO, "docs/huge.md", "x" * 1_000_001)
    tracker = make_tracker(gh)
    cases = {"docs/pm": "directory", "docs/latin1.md": "not UTF-8", "docs/huge.md": "too large"}
    for path, reason in cases.items():
        with pytest.raises(TrackerError, match=reason) as err:
            tracker.fetch_postmortem(PostmortemRef("file", f"{REPO}:{path}"), site="")
        assert not err.value.transient
    with pytest.raises(NotFound):
        tracker.fetch_postmortem(PostmortemRef("file", f"{REPO}:docs/nope.md"), site="")
    with pytest.raises(TrackerError, match="not a GitHub file reference"):
        tracker.fetch_postmortem(PostmortemRef("file", "docs/pm.md"), site="")
    with pytest.raises(TrackerError, match="kind 'confluence'"):
        tracker.fetch_postmortem(PostmortemRef("confluence", "123"), site="")


# ---- reconcile, permissions, repository config ------------------------------------------


def test_recently_closed_pages_through_and_skips_pull_requests(gh: FakeGitHub) -> None:
    closed = [gh.add_issue(REPO, f"Incident {i}", state="closed") for i in range(12)]
    gh.add_issue(REPO, "Still open")
    gh.add_issue(REPO, "Merged fix", state="closed", pull_request=True)
    old = gh.add_issue(REPO, "Ancient", state="closed")
    gh.set_updated_at(REPO, old, datetime.now(UTC) - timedelta(days=30))
    since = (datetime.now(UTC) - timedelta(days=7)).astimezone(timezone(timedelta(hours=-5)))

    refs = make_tracker(gh, per_page=5).recently_closed(REPO, since)

    assert sorted(int(r.key) for r in refs) == closed
    assert all(r == ref_for(gh, int(r.key)) for r in refs)
    assert len(gh.calls("GET", rf"^/repos/{REPO}/issues$")) == 3  # 13 items, 5 a page


def test_can_write(gh: FakeGitHub) -> None:
    roles = {"ada": "admin", "max": "maintain", "wes": "write", "tri": "triage", "rea": "read"}
    for user, role in roles.items():
        gh.set_permission(REPO, user, role)
    tracker, ref = make_tracker(gh), ref_for(gh, 1)
    assert {u: tracker.can_write(ref, u) for u in roles} == {
        "ada": True,
        "max": True,
        "wes": True,
        "tri": False,
        "rea": False,
    }
    assert not tracker.can_write(ref, "stranger")
    assert not tracker.can_write(ref, "")
    gh.fail("GET", r"/permission$", 404)
    assert not tracker.can_write(ref, "ghost")


def test_repo_config_present_and_absent(gh: FakeGitHub) -> None:
    tracker = make_tracker(gh)
    assert tracker.repo_config(REPO) is None
    gh.add_file(REPO, ".github/pmguard.yml", "enforcement: reopen\n")
    assert tracker.repo_config(REPO) == "enforcement: reopen\n"
    gh.add_file(REPO, ".github/other.yml/x", "")
    with pytest.raises(TrackerError, match="directory"):
        tracker.repo_config(REPO, ".github/other.yml")


def test_repositories_with_a_token(gh: FakeGitHub) -> None:
    gh.add_repo("acme/api", private=True)
    assert make_tracker(gh).repositories() == ["acme/api", REPO]


# ---- GitHub App auth --------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def app(gh: FakeGitHub, app_key: tuple[str, str]) -> FakeGitHub:
    gh.register_app(4242, app_key[1], slug="pmguard")
    gh.add_repo("other-org/api")
    gh.add_installation(11, [REPO])
    gh.add_installation(12, ["other-org/api"])
    return gh


def test_app_auth_picks_the_installation_per_repository(app: FakeGitHub, app_key) -> None:
    a = app.add_issue(REPO, "Down", state="closed")
    b = app.add_issue("other-org/api", "Down", state="closed")
    tracker = GitHubTracker(app.url, app_id=4242, private_key=app_key[0], bot_login="pmguard[bot]")

    for _ in range(2):
        tracker.upsert_comment(ref_for(app, a), MARKER, f"{MARKER} hi")
        tracker.upsert_comment(ref_for(app, b, "other-org/api"), MARKER, f"{MARKER} hi")

    assert [c["user"] for c in app.comments(REPO, a)] == ["pmguard[bot]"]
    assert [c["user"] for c in app.comments("other-org/api", b)] == ["pmguard[bot]"]
    # One lookup per repository and one token per installation, then cached.
    assert len(app.calls("GET", r"/installation$")) == 2
    assert [p for _, p, _ in app.calls("POST", "access_tokens")] == [
        "/app/installations/11/access_tokens",
        "/app/installations/12/access_tokens",
    ]

    assert tracker.repositories() == [REPO, "other-org/api"]
    assert len(app.calls("POST", "access_tokens")) == 2  # listing reused the tokens


def test_app_auth_with_a_fixed_installation(app: FakeGitHub, app_key) -> None:
    n = app.add_issue(REPO, "Down", state="closed")
    tracker = GitHubTracker(app.url, app_id=4242, private_key=app_key[0], installation_id=11)
    tracker.reopen(ref_for(app, n))
    assert app.issue(REPO, n)["state"] == "open"
    assert app.calls("GET", r"/installation$") == []
    assert tracker.repositories() == [REPO]
    # An installation sees only its repositories.
    with pytest.raises(NotFound):
        tracker.fetch_incident(ref_for(app, 1, "other-org/api"))


def test_app_not_installed_on_a_repository(app: FakeGitHub, app_key) -> None:
    app.add_repo("acme/secret")
    tracker = GitHubTracker(app.url, app_id=4242, private_key=app_key[0])
    with pytest.raises(NotFound, match="acme/secret"):
        tracker.fetch_incident(ref_for(app, 1, "acme/secret"))


def test_app_jwt_signed_with_another_key_is_rejected(app: FakeGitHub) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    tracker = GitHubTracker(app.url, app_id=4242, private_key=pem)
    with pytest.raises(TrackerError) as err:
        tracker.fetch_incident(ref_for(app, 1))
    assert err.value.transient is False and "401" in str(err.value)


# ---- error mapping ----------------------------------------------------------------------


def no_secret(err: TrackerError, token: str) -> None:
    assert token not in str(err) and token not in repr(err)


def test_server_error_is_transient(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed")
    gh.fail("GET", rf"/issues/{n}$", 500)
    with pytest.raises(TrackerError) as err:
        make_tracker(gh).fetch_incident(ref_for(gh, n))
    assert err.value.transient and err.value.retry_after is None
    assert "fetch_incident" in str(err.value) and f"{REPO}#{n}" in str(err.value)
    assert "500" in str(err.value)
    no_secret(err.value, gh.token)
    # PyGithub did not retry on its own: the worker owns retries.
    assert len(gh.calls("GET", rf"/issues/{n}$")) == 1


def test_server_error_with_retry_after(gh: FakeGitHub) -> None:
    gh.fail("POST", r"/comments$", 503, headers={"Retry-After": "7"})
    with pytest.raises(TrackerError) as err:
        make_tracker(gh).upsert_comment(ref_for(gh, gh.add_issue(REPO, "x")), MARKER, "b")
    assert err.value.transient and err.value.retry_after == 7


def test_primary_rate_limit_waits_until_reset(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed")
    gh.rate_limit("GET", rf"/issues/{n}$", reset_in=30)
    with pytest.raises(TrackerError) as err:
        make_tracker(gh).fetch_incident(ref_for(gh, n))
    assert err.value.transient and not isinstance(err.value, NotFound)
    assert 25 <= err.value.retry_after <= 31
    no_secret(err.value, gh.token)


def test_rate_limit_reset_in_the_past_waits_at_least_a_second(gh: FakeGitHub) -> None:
    gh.fail(
        "GET",
        r"/issues$",
        403,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) - 10)},
        body={"message": "API rate limit exceeded for installation ID 1."},
    )
    with pytest.raises(TrackerError) as err:
        make_tracker(gh).recently_closed(REPO, datetime.now(UTC))
    assert err.value.transient and err.value.retry_after == 1


def test_secondary_rate_limit_with_retry_after(gh: FakeGitHub) -> None:
    gh.fail(
        "PATCH",
        r"/issues/\d+$",
        403,
        headers={"Retry-After": "60"},
        body={
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
            "before you try again."
        },
    )
    with pytest.raises(TrackerError) as err:
        make_tracker(gh).reopen(ref_for(gh, gh.add_issue(REPO, "x", state="closed")))
    assert err.value.transient and err.value.retry_after == 60


def test_429_retry_after(gh: FakeGitHub) -> None:
    gh.fail("GET", r"/timeline$", 429, headers={"Retry-After": "12"})
    with pytest.raises(TrackerError) as err:
        make_tracker(gh).incidents_linking(ref_for(gh, gh.add_issue(REPO, "PM")))
    assert err.value.transient and err.value.retry_after == 12


def test_forbidden_without_rate_limit_is_permanent(gh: FakeGitHub) -> None:
    gh.fail("POST", r"/labels$", 403, body={"message": "Resource not accessible by integration"})
    with pytest.raises(TrackerError) as err:
        make_tracker(gh).set_verdict_labels(ref_for(gh, gh.add_issue(REPO, "x")), "a", [])
    assert not err.value.transient and "not accessible" in str(err.value)


def test_bad_credentials_are_permanent_and_not_echoed(gh: FakeGitHub) -> None:
    secret = "ghp_wrongTokenThatMustNotLeak000000000000"
    tracker = GitHubTracker(gh.url, token=secret)
    with pytest.raises(TrackerError) as err:
        tracker.fetch_incident(ref_for(gh, 1))
    assert not err.value.transient and not isinstance(err.value, NotFound)
    assert "401" in str(err.value)
    no_secret(err.value, secret)
    assert gh.requests == [("GET", f"/repos/{REPO}/issues/1/comments", 401)]


def test_timeout_is_transient(gh: FakeGitHub) -> None:
    n = gh.add_issue(REPO, "Down", state="closed")
    gh.delay("GET", rf"/issues/{n}/comments$", 3)
    with pytest.raises(TrackerError) as err:
        make_tracker(gh, timeout=0.5).fetch_incident(ref_for(gh, n))
    assert err.value.transient and "Timeout" in str(err.value)


def test_connection_refused_is_transient() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tracker = GitHubTracker(f"http://127.0.0.1:{port}", token="ghp_secret")
    with pytest.raises(TrackerError) as err:
        tracker.reopen(IncidentRef("github", f"http://127.0.0.1:{port}", REPO, "1"))
    assert err.value.transient
    no_secret(err.value, "ghp_secret")


def test_retry_after_parsing() -> None:
    now = 1_700_000_000.0
    in_90s = format_datetime(datetime.fromtimestamp(now + 90, UTC), usegmt=True)
    assert retry_after({"retry-after": "5"}, now) == 5
    assert retry_after({"retry-after": "0"}, now) == 1
    assert retry_after({"retry-after": in_90s}, now) == pytest.approx(90)
    assert retry_after({"x-ratelimit-reset": str(int(now) + 42)}, now) == 42
    assert retry_after({"x-ratelimit-reset": str(int(now) + 42)}, now, reset=False) is None
    assert retry_after({"retry-after": "soon"}, now) is None
    assert retry_after({}, now) is None


# ---- the fake itself --------------------------------------------------------------------


def test_fake_paginates_with_absolute_links_and_checks_tokens(gh: FakeGitHub) -> None:
    for i in range(3):
        gh.add_issue(REPO, f"Issue {i}")
    auth = {"Authorization": f"Bearer {gh.token}"}
    first = requests.get(f"{gh.url}/repos/{REPO}/issues?per_page=2", headers=auth)
    assert first.status_code == 200 and len(first.json()) == 2
    assert first.links["next"]["url"].startswith(gh.url + f"/repos/{REPO}/issues?")
    second = requests.get(first.links["next"]["url"], headers=auth)
    assert [i["number"] for i in second.json()] == [1] and "next" not in second.links

    bad = requests.get(f"{gh.url}/repos/{REPO}", headers={"Authorization": "token nope"})
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"
    assert requests.get(f"{gh.url}/repos/{REPO}").status_code == 401

    gone = requests.delete(f"{gh.url}/repos/{REPO}/issues/1/labels/absent", headers=auth)
    assert gone.status_code == 404


# ---- references are parsed into validated components, never joined into API paths ------


@pytest.mark.parametrize(
    "url",
    [
        "{web}/acme/web/blob/main/../../../../user",
        "{web}/acme/web/blob/main/docs/../../../../user",
        "{web}/acme/web/blob/main/%2e%2e/%2E%2E/%2e%2e/%2e%2e/user",
        "{web}/acme/web/blob/main/..%2F..%2F..%2F..%2Fuser",
        "{web}/acme/web/blob/main/%252e%252e/%252e%252e/user",
        "{web}/acme/web/blob/main/..%5C..%5Cuser",
        "{web}/acme/web/blob/main/docs\\..\\..\\user",
        "{web}/../../blob/main/user",
        "{web}/acme/../blob/main/user",
        "{web}/acme/web/issues/../../../../user",
    ],
)
def test_path_traversal_in_a_url_is_refused_before_any_request(gh: FakeGitHub, url: str) -> None:
    url = url.format(web=gh.web_url)
    with pytest.raises(TrackerError) as err:
        make_tracker(gh).fetch_postmortem(PostmortemRef("url", url, url), site="")
    assert not err.value.transient
    assert gh.requests == [], "no request may leave for a reference with a traversal"


@pytest.mark.parametrize(
    ("kind", "locator", "message"),
    [
        ("file", "acme/web:../../../../user@main", "'..'"),
        ("file", "acme/web:/etc/passwd@main", "absolute"),
        ("file", "acme/web:docs\\pm.md@main", "backslash"),
        ("file", "acme/web:docs/%2e%2e/pm.md@main", "encoded"),
        ("file", "acme/web:docs//pm.md@main", "empty"),
        ("file", "acme/web:docs/pm.md@main..evil", "branch"),
        ("file", "../..:user@main", "repository"),
        ("issue", "../..#3", "repository"),
        ("issue", "acme/..#3", "repository"),
        ("issue", "acme/web#3/../../user", "issue"),
        ("issue", "acme/web#-3", "issue"),
    ],
)
def test_bad_locators_are_refused_with_a_clear_error(
    gh: FakeGitHub, kind: str, locator: str, message: str
) -> None:
    with pytest.raises(TrackerError, match=message) as err:
        make_tracker(gh).fetch_postmortem(PostmortemRef(kind, locator), site="")
    assert not err.value.transient
    assert gh.requests == []


def test_a_dotted_repository_name_and_a_branch_with_dots_are_still_read(gh: FakeGitHub) -> None:
    gh.add_repo("acme/.github")
    gh.add_file("acme/.github", "pm/v1.2.md", "# Dots\n", ref="release-1.2")
    url = f"{gh.web_url}/acme/.github/blob/release-1.2/pm/v1.2.md"
    pm = make_tracker(gh).fetch_postmortem(PostmortemRef("url", url, url), site="")
    assert pm.text == "# Dots\n"
    assert gh.requests[-1][1] == "/repos/acme/.github/contents/pm/v1.2.md"


def test_a_scope_refuses_other_repositories_before_any_request(gh: FakeGitHub) -> None:
    from connector.base import OutsideScope, ReadScope

    gh.add_repo("acme/secret", private=True)
    gh.add_file("acme/secret", "pm.md", "secret\n")
    pm = gh.add_issue("acme/secret", "PM", "secret", labels=["postmortem"])
    scope = ReadScope(github=frozenset({REPO}))
    tracker = make_tracker(gh)
    blob = f"{gh.web_url}/acme/secret/blob/main/pm.md"
    for ref in (PostmortemRef("issue", f"acme/secret#{pm}"),
                PostmortemRef("file", "acme/secret:pm.md"), PostmortemRef("url", blob, blob)):
        with pytest.raises(OutsideScope, match="outside the allowed places"):
            tracker.fetch_postmortem(ref, site="", scope=scope)
    assert gh.requests == []
    gh.add_file(REPO, "pm.md", "ours\n")
    own = tracker.fetch_postmortem(PostmortemRef("file", "ACME/Web:pm.md"), scope=scope)
    assert own.text == "ours\n" and own.source.lower() == "repository acme/web"
