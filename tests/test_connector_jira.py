"""Jira connector: webhook parsing (Cloud and Data Center shapes) and JiraTracker against
the fake Jira + Confluence server, through the real `jira` client."""

from __future__ import annotations

import time
import traceback
from datetime import UTC, datetime, timedelta

import pytest

from connector.base import (
    CLOSED,
    INCIDENT_EDITED,
    POSTMORTEM_EDITED,
    RECHECK,
    REOPENED,
    IncidentRef,
    MalformedPayload,
    NotFound,
    PostmortemRef,
    Tracker,
    TrackerError,
)
from connector.confluence import PageTarget, page_target, storage_to_text
from connector.jira import JiraTracker, parse_event
from tests.fakes.jira import FakeJira, fake_jira  # noqa: F401  (the shared fixture)

SITE = "https://example.atlassian.net"
BOT_CLOUD = "5b10bot0000000000000000"

# ---- payloads, modelled on ../shared/fixtures/jira (our own values) ---------------------


def cloud_user(account_id: str = "5c5f880629be9642ba529340", name: str = "Dana Ops") -> dict:
    return {
        "self": f"{SITE}/rest/api/2/user?accountId={account_id}",
        "accountId": account_id,
        "displayName": name,
        "active": True,
        "timeZone": "Europe/London",
        "accountType": "atlassian",
    }


def server_user(name: str = "dana") -> dict:
    # Data Center: no accountId; name and key instead.
    return {
        "self": f"http://jira.example.org:8080/rest/api/2/user?username={name}",
        "name": name,
        "key": name,
        "emailAddress": f"{name}@example.org",
        "displayName": name.title(),
        "active": True,
    }


def issue(
    key: str = "OPS-41",
    *,
    status: str = "Done",
    category: str = "done",
    labels: tuple[str, ...] = ("sev2",),
    issue_type: str = "Incident",
    resolution: str | None = "Done",
) -> dict:
    project = key.split("-")[0]
    return {
        "id": "10040",
        "self": f"{SITE}/rest/api/2/issue/10040",
        "key": key,
        "fields": {
            "summary": "Checkout returned 500s",
            "issuetype": {"id": "10100", "name": issue_type, "subtask": False},
            "project": {"id": "10000", "key": project, "name": "Operations"},
            "labels": list(labels),
            "status": {
                "id": "10002",
                "name": status,
                "statusCategory": {"id": 3, "key": category, "name": status},
            },
            "resolution": {"id": "10000", "name": resolution} if resolution else None,
            "description": "h1. What happened",
            "issuelinks": [],
        },
    }


def item(field: str, from_: str | None, to: str | None, *, field_id: bool = True) -> dict:
    entry = {
        "field": field,
        "fieldtype": "jira",
        "from": from_ and "1",
        "fromString": from_,
        "to": to and "2",
        "toString": to,
    }
    if field_id:  # Server changelog items carry no fieldId
        entry["fieldId"] = field.lower()
    return entry


def updated(the_issue: dict, items: list[dict], user: dict, event_type: str | None) -> dict:
    payload = {
        "timestamp": 1700000000000,
        "webhookEvent": "jira:issue_updated",
        "user": user,
        "issue": the_issue,
        "changelog": {"id": "10228", "items": items},
    }
    if event_type is not None:
        payload["issue_event_type_name"] = event_type
    return payload


def commented(body: str, author: dict, *, the_issue: dict | None, event="comment_created"):
    payload = {
        "timestamp": 1700000000000,
        "webhookEvent": event,
        "comment": {
            "self": "http://jira.example.org:8080/rest/api/2/issue/10013/comment/10082",
            "id": "10082",
            "author": author,
            "body": body,
            "updateAuthor": author,
            "created": "2024-06-04T00:15:17.234+0000",
            "updated": "2024-06-04T00:15:17.234+0000",
        },
    }
    if the_issue is not None:
        fields = the_issue["fields"]
        keep = ("summary", "issuetype", "project", "status")
        payload["issue"] = {**the_issue, "fields": {k: fields[k] for k in keep}}
    return payload


def parse(payload: dict, **kw):
    return parse_event(payload, site=SITE, **kw)


# ---- parse_event: closing -----------------------------------------------------------------


def test_cloud_simplified_workflow_done_is_closed():
    payload = updated(
        issue(),
        [item("resolution", None, "Done"), item("status", "In Progress", "Done")],
        cloud_user(),
        "issue_generic",
    )
    event = parse(payload)
    assert event is not None and event.kind == CLOSED
    assert event.ref == IncidentRef("jira", SITE, "OPS", "OPS-41")
    assert event.actor == "5c5f880629be9642ba529340"
    assert event.labels == ("sev2",) and event.issue_type == "Incident"


def test_classic_issue_resolved_on_server_without_account_id_is_closed():
    payload = updated(
        issue("TES-4", status="Resolved"),
        [
            item("status", "In Progress", "Resolved", field_id=False),
            item("resolution", None, "Done", field_id=False),
        ],
        server_user("admin"),
        "issue_resolved",
    )
    event = parse(payload)
    assert event is not None and event.kind == CLOSED
    assert event.actor == "admin" and event.ref.project == "TES"


def test_old_server_without_event_type_name_closing_is_closed():
    payload = updated(
        issue("TES-4", status="Closed"),
        [item("status", "Resolved", "Closed", field_id=False)],
        server_user("admin"),
        None,
    )
    assert parse(payload).kind == CLOSED


def test_resolution_alone_is_closed():
    payload = updated(issue(), [item("resolution", None, "Done")], cloud_user(), "issue_generic")
    assert parse(payload).kind == CLOSED


def test_custom_done_categories():
    payload = updated(
        issue(status="Shipped", category="indeterminate", resolution=None),
        [item("status", "In Progress", "Shipped")],
        cloud_user(),
        "issue_generic",
    )
    assert parse(payload) is None
    assert parse(payload, done_categories=("indeterminate",)).kind == CLOSED


# ---- parse_event: reopening and other transitions -----------------------------------------


def test_reopen_clears_resolution():
    payload = updated(
        issue(status="To Do", category="new", resolution=None),
        [item("resolution", "Done", None), item("status", "Done", "To Do")],
        cloud_user(),
        "issue_generic",
    )
    assert parse(payload).kind == REOPENED


def test_reopen_without_resolution_from_a_done_status():
    payload = updated(
        issue(status="In Progress", category="indeterminate", resolution=None),
        [item("status", "Done", "In Progress")],
        cloud_user(),
        "issue_generic",
    )
    assert parse(payload).kind == REOPENED


def test_server_issue_reopened_event():
    payload = updated(
        issue(status="Reopened", category="new", resolution=None),
        [item("status", "Shipped", "Reopened", field_id=False)],
        server_user(),
        "issue_reopened",
    )
    assert parse(payload).kind == REOPENED


def test_starting_work_is_not_a_close_or_reopen():
    payload = updated(
        issue(status="In Progress", category="indeterminate", resolution=None),
        [item("status", "To Do", "In Progress")],
        cloud_user(),
        "issue_generic",
    )
    assert parse(payload) is None


def test_label_change_on_closed_issue_is_nothing():
    # The service's own verdict labels must not trigger another check.
    payload = updated(
        issue(), [item("labels", "sev2", "sev2 postmortem:ok")], cloud_user(), "issue_updated"
    )
    assert parse(payload) is None


# ---- parse_event: edits -----------------------------------------------------------------------


def test_description_edit_on_closed_incident():
    payload = updated(issue(), [item("description", "a", "b")], cloud_user(), "issue_updated")
    assert parse(payload).kind == INCIDENT_EDITED


def test_description_edit_on_open_incident_is_nothing():
    the_issue = issue(status="To Do", category="new", resolution=None)
    payload = updated(the_issue, [item("description", "a", "b")], cloud_user(), "issue_updated")
    assert parse(payload) is None


def test_issue_link_change_on_closed_incident():
    link = {"field": "Link", "fieldtype": "jira", "from": None, "fromString": None}
    link |= {"to": "OPS-7", "toString": "This issue relates to OPS-7"}
    payload = updated(issue(), [link], server_user(), "issue_updated")
    assert parse(payload).kind == INCIDENT_EDITED


def test_postmortem_issue_edit_is_postmortem_edited():
    the_issue = issue(
        "OPS-7", status="In Progress", category="indeterminate", issue_type="Postmortem"
    )
    payload = updated(the_issue, [item("description", "a", "b")], cloud_user(), "issue_updated")
    event = parse(payload)
    assert event.kind == POSTMORTEM_EDITED and event.ref.key == "OPS-7"


# ---- parse_event: comments --------------------------------------------------------------------


def test_recheck_comment_on_cloud():
    payload = commented("Thanks!\n/pmguard recheck\n", cloud_user(), the_issue=issue())
    event = parse(payload)
    assert event.kind == RECHECK and event.actor == "5c5f880629be9642ba529340"
    assert event.ref.key == "OPS-41" and event.issue_type == "Incident"


def test_recheck_with_crlf_line_endings():
    payload = commented(
        "Updated the doc.\r\n/pmguard recheck\r\n", server_user(), the_issue=issue()
    )
    assert parse(payload).kind == RECHECK


def test_recheck_mentioned_inside_a_sentence_is_not_a_command():
    the_issue = issue(status="To Do", category="new", resolution=None)
    payload = commented("Type /pmguard recheck when ready", cloud_user(), the_issue=the_issue)
    assert parse(payload) is None


def test_comment_on_closed_incident_is_an_edit_and_on_open_one_nothing():
    assert parse(commented("Postmortem: OPS-7", cloud_user(), the_issue=issue())).kind == (
        INCIDENT_EDITED
    )
    open_issue = issue(status="To Do", category="new", resolution=None)
    assert parse(commented("hello", cloud_user(), the_issue=open_issue)) is None


def test_bot_comments_are_ignored_by_account_id_and_by_name():
    bot = cloud_user(BOT_CLOUD, "Postmortem Guard")
    payload = commented("/pmguard recheck", bot, the_issue=issue())
    assert parse(payload, bot_account=BOT_CLOUD) is None
    payload = commented("/pmguard recheck", server_user("pmguard"), the_issue=issue())
    assert parse(payload, bot_account="pmguard") is None
    assert parse(payload, bot_account="someone-else").kind == RECHECK


def test_comment_updated_uses_the_editor():
    payload = commented(
        "/pmguard recheck", cloud_user(), the_issue=issue(), event="comment_updated"
    )
    payload["comment"]["updateAuthor"] = cloud_user(BOT_CLOUD, "Postmortem Guard")
    assert parse(payload, bot_account=BOT_CLOUD) is None


def test_server_comment_without_issue_takes_the_id_from_self():
    payload = commented("/pmguard recheck", server_user("levb"), the_issue=None)
    event = parse(payload)
    assert event.kind == RECHECK and event.ref.key == "10013" and event.actor == "levb"
    assert parse(commented("unik", server_user("levb"), the_issue=None)) is None


def test_server_issue_commented_update_with_recheck():
    payload = updated(issue(), [], server_user("levb"), "issue_commented")
    del payload["changelog"]
    payload["comment"] = commented("/pmguard recheck", server_user("levb"), the_issue=None)[
        "comment"
    ]
    assert parse(payload).kind == RECHECK


# ---- parse_event: links and the rest ----------------------------------------------------------


@pytest.mark.parametrize("event", ["issuelink_created", "issuelink_deleted"])
def test_issuelink_events_point_at_the_source_issue_id(event):
    payload = {
        "timestamp": 1700000000000,
        "webhookEvent": event,
        "issueLink": {
            "id": 10656,
            "sourceIssueId": 11442,
            "destinationIssueId": 11961,
            "issueLinkType": {"id": 10000, "name": "Relates"},
            "systemLink": False,
        },
    }
    result = parse(payload)
    assert result.kind == INCIDENT_EDITED
    assert result.ref == IncidentRef("jira", SITE, "", "11442")


@pytest.mark.parametrize(
    "payload",
    [
        {"webhookEvent": "jira:issue_deleted", "issue": issue(), "user": cloud_user()},
        {"webhookEvent": "jira:issue_created", "issue": issue(), "user": cloud_user()},
        {"webhookEvent": "worklog_created"},
        {"webhookEvent": "jira:issue_updated"},
        {"webhookEvent": "issuelink_created"},
        {},
    ],
)
def test_irrelevant_or_malformed_payloads_give_nothing(payload):
    assert parse(payload) is None


def _mangled(value, depth=0):
    """Every way of replacing one nested value with a wrong type."""
    if isinstance(value, dict):
        for k, v in value.items():
            for bad in ("x", 3, None, []):
                yield {**value, k: bad}
            for inner in _mangled(v, depth + 1):
                yield {**value, k: inner}


def test_malformed_nested_values_give_nothing_or_name_the_field():
    samples = [
        updated(issue(), [item("status", "In Progress", "Done")], cloud_user(), "issue_generic"),
        commented("/pmguard recheck", server_user(), the_issue=issue()),
    ]
    refused = 0
    for sample in samples:
        for payload in _mangled(sample):
            try:
                parse(payload)
            except MalformedPayload as error:
                # The one exception allowed: the web layer answers it 400 with this text.
                assert " must be " in str(error) or "comment.body" in str(error)
                refused += 1
    assert refused  # a wrong type in a field the parser reads is refused, not guessed at


def test_non_dict_payload():
    assert parse_event([], site=SITE) is None  # type: ignore[arg-type]


# ---- Confluence storage format -> text ------------------------------------------------------

STORAGE = """
<h1>Checkout outage</h1>
<p>On Monday <ac:link><ri:user ri:account-id="ACCOUNT" /></ac:link> deployed v2 &amp; the
<strong>database</strong> fell over.<br/>Alerts fired late.</p>
<h2>Timeline</h2>
<ul><li><p>10:00 alert</p><ul><li>see <a href="https://status.example.com/1">status</a></li></ul></li>
<li>10:05 page</li></ul>
<table><tbody><tr><th>Action</th><th>Owner</th><th>Due</th></tr>
<tr><td><p>Add a | guard</p></td><td>SRE</td><td><time datetime="2024-06-01" /></td></tr>
</tbody></table>
<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash</ac:parameter>
<ac:plain-text-body><![CDATA[# Bob should have known
kubectl delete ns prod && echo "<done>"]]></ac:plain-text-body></ac:structured-macro>
<pre>obviously-broken --force</pre>
<p>Tracked in <ac:structured-macro ac:name="jira"><ac:parameter ac:name="key">OPS-12</ac:parameter>
</ac:structured-macro>; run <code>make   check</code>.</p>
<ac:task-list>
<ac:task><ac:task-id>1</ac:task-id><ac:task-status>incomplete</ac:task-status>
<ac:task-body>Update the failover runbook</ac:task-body></ac:task>
<ac:task><ac:task-id>2</ac:task-id><ac:task-status>complete</ac:task-status>
<ac:task-body>Add the alert</ac:task-body></ac:task>
</ac:task-list>
<ac:structured-macro ac:name="info"><ac:parameter ac:name="title">Hidden title</ac:parameter>
<ac:rich-text-body><p>We look for causes in the system.</p></ac:rich-text-body>
</ac:structured-macro>
<p><ac:placeholder>Describe the impact here</ac:placeholder></p>
"""


def test_storage_to_text_structure():
    text = storage_to_text(STORAGE, user_name=lambda attrs: "Bob Builder")
    assert text.startswith("# Checkout outage\n\n")
    assert (
        "On Monday @Bob Builder deployed v2 & the database fell over.\nAlerts fired late." in text
    )
    assert "## Timeline" in text
    assert "- 10:00 alert\n  - see [status](https://status.example.com/1)\n- 10:05 page" in text
    assert (
        "| Action | Owner | Due |\n| --- | --- | --- |\n| Add a \\| guard | SRE | 2024-06-01 |"
        in (text)
    )
    assert '```bash\n# Bob should have known\nkubectl delete ns prod && echo "<done>"\n```' in text
    assert "```\nobviously-broken --force\n```" in text
    assert "Tracked in OPS-12; run `make check`." in text
    assert "- [ ] Update the failover runbook\n- [x] Add the alert" in text
    assert "We look for causes in the system." in text
    # Macro parameters and template placeholders are not prose.
    assert "Hidden title" not in text and "Describe the impact" not in text


def test_storage_code_is_skipped_by_the_analyser():
    from nlp.text import parse as parse_text

    text = storage_to_text(STORAGE)
    analysed = " ".join(b.text for b in parse_text(text, "markdown").blocks)
    assert "Bob should have known" not in analysed and "obviously-broken" not in analysed
    assert "Update the failover runbook" in analysed


def test_page_target_forms():
    wiki = "https://example.atlassian.net/wiki"
    assert page_target(f"{wiki}/spaces/ENG/pages/123/Post+mortem", wiki) == PageTarget(
        page_id="123", space="ENG"
    )
    assert page_target(f"{wiki}/spaces/ENG/pages/edit-v2/124", wiki).page_id == "124"
    assert page_target(f"{wiki}/pages/viewpage.action?pageId=125", wiki).page_id == "125"
    display = page_target(f"{wiki}/display/ENG/Checkout+outage", wiki)
    assert (display.space, display.title) == ("ENG", "Checkout outage")
    assert page_target("https://other.example.com/wiki/spaces/ENG/pages/1/x", wiki) is None
    assert page_target(f"{wiki}/x/AbC", wiki, "appId=1&pageId=126").page_id == "126"


# ---- JiraTracker against the fake -----------------------------------------------------------


@pytest.fixture(params=["Cloud", "Server"])
def fake(request: pytest.FixtureRequest):
    with FakeJira(request.param) as server:
        server.add_project("OPS")
        yield server


def tracker(fake: FakeJira, **kw) -> JiraTracker:
    kw.setdefault("timeout", 2)
    return JiraTracker(fake.url, **fake.credentials(), **kw)


def ref(fake: FakeJira, key: str) -> IncidentRef:
    return IncidentRef("jira", fake.url, key.split("-")[0], key)


def test_tracker_satisfies_the_protocol_and_is_lazy(fake):
    t = tracker(fake)
    assert isinstance(t, Tracker) and t.name == "jira"
    assert fake.requests == []  # nothing until the first call
    assert t.projects() == ["OPS"]


def test_fetch_incident(fake):
    fake.add_user("alice", "Alice Adams")
    fake.add_user("bob", "Bob Brown")
    key = fake.add_issue(
        "OPS", "Checkout down", "h1. Impact\nBob restarted it.", labels=("sev1",), assignee="bob"
    )
    fake.add_comment(key, "Looking into it", "carol")
    fake.transition(key, "Done")
    fake.set_field(key, "customfield_10060", {"value": "SEV-1", "id": "1"}, name="Severity")
    incident = tracker(fake, severity_field="Severity").fetch_incident(ref(fake, key))
    assert incident.ref == ref(fake, key)
    assert (incident.title, incident.body, incident.body_format) == (
        "Checkout down",
        "h1. Impact\nBob restarted it.",
        "jira",
    )
    assert incident.state == "closed" and incident.state_reason == "Done"
    assert incident.closed_at is not None and incident.url == f"{fake.url}/browse/{key}"
    assert incident.labels == ("sev1",) and incident.issue_type == "Incident"
    assert incident.severity == "SEV-1"
    assert incident.author == fake.user_id("alice")
    assert incident.assignees == ("Bob Brown",)
    assert [(c.author, c.body) for c in incident.comments] == [("Carol", "Looking into it")]
    for person in ("Alice Adams", "Bob Brown", "Carol", fake.user_id("alice")):
        assert person in incident.roster


def test_comments_are_paged(fake):
    key = fake.add_issue("OPS", "Outage", "x")
    for n in range(5):
        fake.add_comment(key, f"note {n}", "carol")
    incident = tracker(fake, page_size=2).fetch_incident(ref(fake, key))
    assert [c.body for c in incident.comments] == [f"note {n}" for n in range(5)]
    assert len(fake.calls("GET", r"/comment$")) == 3


def test_fetch_incident_by_numeric_id_gives_the_canonical_ref(fake):
    key = fake.add_issue("OPS", "Outage", "text")
    numeric = fake.issue(key)["id"]
    incident = tracker(fake, severity_field="priority").fetch_incident(
        IncidentRef("jira", fake.url, "", numeric)
    )
    assert incident.ref == ref(fake, key) and incident.state == "open"
    assert incident.severity == "Medium"


def test_adf_description_is_kept_as_adf(fake):
    adf = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": []}]}
    key = fake.add_issue("OPS", "Outage", adf)
    incident = tracker(fake).fetch_incident(ref(fake, key))
    assert incident.body_format == "adf" and '"type": "doc"' in incident.body


def test_linked_postmortem_issue_by_type(fake):
    key = fake.add_issue("OPS", "Outage", "x", status="Done")
    pm = fake.add_issue("OPS", "PM", "h2. Timeline", issue_type="Post-incident review")
    other = fake.add_issue("OPS", "Follow-up", "", issue_type="Task")
    fake.link(key, pm, "Relates")
    fake.link(other, key, "Blocks")
    linked = tracker(fake).fetch_incident(ref(fake, key)).linked
    assert linked == (PostmortemRef("issue", pm, f"{fake.url}/browse/{pm}"),)


def test_configured_link_type_restricts_links(fake):
    key = fake.add_issue("OPS", "Outage", "x", status="Done")
    pm1 = fake.add_issue("OPS", "PM via relates", "", issue_type="Postmortem")
    pm2 = fake.add_issue("OPS", "PM via postmortem link", "", issue_type="Task")
    fake.link(key, pm1, "Relates")
    fake.link(key, pm2, "Postmortem")
    t = tracker(fake, link_types=("has postmortem",), postmortem_issue_types=())
    assert [r.locator for r in t.fetch_incident(ref(fake, key)).linked] == [pm2]


def test_remote_links_and_url_field(fake):
    key = fake.add_issue("OPS", "Outage", "x", status="Done")
    page_url = fake.add_confluence_page(501, "Checkout PM", "<p>pm</p>")
    fake.add_remote_link(key, page_url, "Checkout PM")
    fake.add_remote_link(key, f"{fake.url}/wiki/pages/viewpage.action?pageId=502", "Other page")
    fake.add_remote_link(key, "https://status.example.com/incidents/9", "Status page")
    fake.add_remote_link(key, "https://docs.example.com/pm/9", "Postmortem (Google Doc)")
    fake.set_field(key, "customfield_10050", f"{fake.url}/wiki/spaces/ENG/pages/503/PM")
    t = tracker(fake, url_field="customfield_10050")
    linked = t.fetch_incident(ref(fake, key)).linked
    assert [(r.kind, r.locator) for r in linked] == [
        ("confluence", "501"),
        ("confluence", "502"),
        ("url", "https://docs.example.com/pm/9"),
        ("confluence", "503"),
    ]
    fake.set_field(key, "customfield_10050", "https://docs.example.com/pm/10")
    assert t.fetch_incident(ref(fake, key)).linked[-1] == PostmortemRef(
        "url", "https://docs.example.com/pm/10", "https://docs.example.com/pm/10"
    )


def test_fetch_postmortem_issue(fake):
    pm = fake.add_issue("OPS", "DB failover PM", "h2. What happened", issue_type="Postmortem")
    result = tracker(fake).fetch_postmortem(PostmortemRef("issue", pm))
    assert (result.title, result.text, result.format) == (
        "DB failover PM",
        "h2. What happened",
        "jira",
    )
    assert result.url == f"{fake.url}/browse/{pm}" and result.updated_at is not None
    by_url = tracker(fake).fetch_postmortem(
        PostmortemRef("url", f"{fake.url}/browse/{pm}", f"{fake.url}/browse/{pm}")
    )
    assert by_url.title == "DB failover PM"


def test_fetch_postmortem_confluence_page(fake):
    fake.add_user("bob", "Bob Builder")
    # Cloud storage names a mentioned user by account id, Data Center by user key.
    attr = f'ri:account-id="{fake.user_id("bob")}"'
    if not fake.cloud:
        attr = f'ri:userkey="{fake.user_key("bob")}"'
    storage = STORAGE.replace('ri:account-id="ACCOUNT"', attr)
    url = fake.add_confluence_page(777, "Checkout outage", storage)
    pm = tracker(fake).fetch_postmortem(PostmortemRef("confluence", "777", url))
    assert pm.title == "Checkout outage" and pm.format == "markdown" and pm.url == url
    assert pm.updated_at is not None
    assert "On Monday @Bob Builder deployed" in pm.text
    assert "- [ ] Update the failover runbook" in pm.text
    assert "| Action | Owner | Due |" in pm.text and "```bash" in pm.text


def test_fetch_postmortem_by_confluence_urls(fake):
    fake.add_confluence_page(778, "Queue backlog", "<h2>Summary</h2><p>It backed up.</p>")
    t = tracker(fake)
    for url in (
        fake.page_url(778),
        f"{fake.url}/wiki/pages/viewpage.action?pageId=778",
        f"{fake.url}/wiki/display/ENG/Queue+backlog",
    ):
        pm = t.fetch_postmortem(PostmortemRef("url", url, url))
        assert pm.text == "## Summary\n\nIt backed up.\n"


def test_unreadable_url_names_it(fake):
    url = "https://docs.example.com/pm/9"
    with pytest.raises(TrackerError) as info:
        tracker(fake).fetch_postmortem(PostmortemRef("url", url, url))
    assert not info.value.transient and url in str(info.value)


def test_missing_confluence_page_is_not_found(fake):
    with pytest.raises(NotFound, match="page 999"):
        tracker(fake).fetch_postmortem(PostmortemRef("confluence", "999"))


def test_upsert_comment_creates_once_then_edits_in_place(fake):
    key = fake.add_issue("OPS", "Outage", "x", status="Done")
    fake.add_comment(key, "Postmortem: OPS-9", "alice")
    t = tracker(fake)
    first = t.upsert_comment(ref(fake, key), "[pmguard]", "[pmguard] Missing a postmortem.")
    again = t.upsert_comment(ref(fake, key), "[pmguard]", "[pmguard] Missing a postmortem.")
    assert again == first
    assert fake.calls("PUT", r"/comment/") == []  # unchanged: no edit
    edited = t.upsert_comment(ref(fake, key), "[pmguard]", "[pmguard] Thanks, all good.")
    assert edited == first and len(fake.calls("PUT", r"/comment/")) == 1
    bodies = [c["body"] for c in fake.comments(key)]
    assert bodies == ["Postmortem: OPS-9", "[pmguard] Thanks, all good."]


def test_upsert_comment_never_edits_a_persons_quote(fake):
    key = fake.add_issue("OPS", "Outage", "x", status="Done")
    quote = "quoting: [pmguard] Missing a postmortem."
    fake.add_comment(key, quote, "alice")
    t = tracker(fake)
    first = t.upsert_comment(ref(fake, key), "[pmguard]", "[pmguard] a")
    assert t.upsert_comment(ref(fake, key), "[pmguard]", "[pmguard] b") == first
    assert [c["body"] for c in fake.comments(key)] == [quote, "[pmguard] b"]


def test_a_duplicate_left_by_a_lost_create_is_removed_and_the_oldest_edited(fake):
    # A POST that timed out but landed after the retry looked leaves two bot comments;
    # before, later checks edited only the first and the second went stale for good.
    from tests.fakes.jira import BOT

    key = fake.add_issue("OPS", "Outage", "x", status="Done")
    first = fake.add_comment(key, "[pmguard] v1", BOT)
    fake.add_comment(key, "a person's reply", "alice")
    fake.add_comment(key, "[pmguard] v1", BOT)
    assert tracker(fake).upsert_comment(ref(fake, key), "[pmguard]", "[pmguard] v2") == first
    assert [c["body"] for c in fake.comments(key)] == ["[pmguard] v2", "a person's reply"]


def test_labels_add_and_remove_only_their_own(fake):
    key = fake.add_issue("OPS", "Outage", "x", labels=("sev1", "postmortem:missing", "db"))
    t = tracker(fake)
    remove = ["postmortem:missing", "postmortem:needs-review", "postmortem:ok"]
    t.set_verdict_labels(ref(fake, key), "postmortem:ok", remove)
    assert fake.labels(key) == ["sev1", "db", "postmortem:ok"]
    puts = fake.calls("PUT", r"/issue/\d+$")
    assert len(puts) == 1
    assert puts[0]["json"]["update"]["labels"] == [
        {"add": "postmortem:ok"},
        {"remove": "postmortem:missing"},
    ]
    t.set_verdict_labels(ref(fake, key), "postmortem:ok", remove)
    assert len(fake.calls("PUT", r"/issue/\d+$")) == 1  # already right: no write


def test_label_with_whitespace_is_refused_before_any_call(fake):
    key = fake.add_issue("OPS", "Outage", "x")
    with pytest.raises(TrackerError, match="spaces") as info:
        tracker(fake).set_verdict_labels(ref(fake, key), "postmortem missing", [])
    assert not info.value.transient and fake.requests == []


def test_reopen_by_transition_name(fake):
    key = fake.add_issue("OPS", "Outage", "x", status="Done")
    tracker(fake, reopen_transition="reopen").reopen(ref(fake, key))
    assert fake.status(key) == "Open"
    posted = fake.calls("POST", r"/transitions$")[0]["json"]
    assert str(posted["transition"]["id"]) == "41"


def test_reopen_without_the_transition_lists_the_available_ones(fake):
    key = fake.add_issue("OPS", "Outage", "x", status="Done")
    fake.remove_transition("Reopen")
    fake._workflow.append(("51", "Back to work", "In Progress", ("done",)))
    with pytest.raises(TrackerError) as info:
        tracker(fake).reopen(ref(fake, key))
    assert not info.value.transient
    assert "'Reopen'" in str(info.value) and "Back to work" in str(info.value)


def test_reopen_of_an_open_issue_is_a_no_op(fake):
    key = fake.add_issue("OPS", "Outage", "x", status="In Progress")
    tracker(fake).reopen(ref(fake, key))
    assert fake.status(key) == "In Progress" and fake.calls("POST", "transitions") == []


def test_recently_closed_pages_through_results(fake):
    now = datetime.now(UTC)
    old = fake.add_issue("OPS", "Old", "", status="Done")
    fake.transition(old, "Open")
    fake.transition(old, "Done", at=now - timedelta(days=30))
    keys = []
    for n in range(5):
        keys.append(fake.add_issue("OPS", f"Recent {n}", ""))
        fake.transition(keys[-1], "Done", at=now - timedelta(hours=5 - n))
    fake.add_issue("OPS", "Still open", "")
    fake.add_project("WEB")
    fake.add_issue("WEB", "Elsewhere", "", status="Done")
    refs = tracker(fake, page_size=2).recently_closed("OPS", now - timedelta(days=1))
    assert [r.key for r in refs] == keys
    assert all(r.project == "OPS" and r.site == fake.url for r in refs)
    searches = fake.calls("GET", r"/search")
    assert len(searches) == 3  # 2 + 2 + 1


def test_recently_closed_uses_the_api_users_time_zone():
    with FakeJira("Cloud", time_zone="Asia/Kolkata") as fake:  # UTC+05:30
        key = fake.add_issue("OPS", "Outage", "")
        resolved = datetime(2024, 3, 1, 10, 30, tzinfo=UTC)
        fake.transition(key, "Done", at=resolved)
        t = tracker(fake)
        assert [r.key for r in t.recently_closed("OPS", resolved - timedelta(minutes=5))] == [key]
        assert t.recently_closed("OPS", resolved + timedelta(minutes=5)) == []
        jql = fake.calls("GET", "/search/jql")[0]["args"]["jql"][0]
        assert '"2024/03/01 15:55"' in jql


def test_can_write(fake):
    key = fake.add_issue("OPS", "Outage", "x", reporter="alice", assignee="bob")
    fake.grant("OPS", "anna")
    t = tracker(fake)
    r = ref(fake, key)
    assert t.can_write(r, fake.user_id("alice")) and t.can_write(r, fake.user_id("bob"))
    assert t.can_write(r, fake.user_id("anna"))
    # Server's username search is a prefix match: "ann" must not pass as "anna".
    assert not t.can_write(r, fake.user_id("ann"))
    assert not t.can_write(r, "")


def test_incidents_linking_a_postmortem_issue(fake):
    a = fake.add_issue("OPS", "Outage A", "", status="Done")
    b = fake.add_issue("OPS", "Outage B", "", status="Done")
    pm = fake.add_issue("OPS", "Shared PM", "", issue_type="Postmortem")
    other_pm = fake.add_issue("OPS", "Older PM", "", issue_type="Postmortem")
    fake.link(a, pm)
    fake.link(pm, b, "Blocks")
    fake.link(pm, other_pm)
    linking = tracker(fake).incidents_linking(ref(fake, pm))
    assert [x.key for x in linking] == [a, b]


def test_repo_config_is_none(fake):
    assert tracker(fake).repo_config("OPS") is None


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(fake, status):
    key = fake.add_issue("OPS", "Outage", "x")
    fake.fail("GET", rf"/issue/{key}$", status=status)
    with pytest.raises(TrackerError) as info:
        tracker(fake).fetch_incident(ref(fake, key))
    assert info.value.transient and f"HTTP {status}" in str(info.value) and key in str(info.value)
    assert tracker(fake).fetch_incident(ref(fake, key)).title == "Outage"  # then it recovers


def test_429_is_transient_with_retry_after_and_never_sleeps(fake):
    key = fake.add_issue("OPS", "Outage", "x")
    fake.fail("GET", rf"/issue/{key}$", status=429, headers={"Retry-After": "30"}, times=5)
    t = tracker(fake)
    t.projects()  # construct the client first
    started = time.monotonic()
    with pytest.raises(TrackerError) as info:
        t.fetch_incident(ref(fake, key))
    assert time.monotonic() - started < 1.0
    assert info.value.transient and info.value.retry_after == 30
    assert len(fake.calls("GET", rf"/issue/{key}$")) == 1  # the client did not retry


def test_503_during_client_construction_is_transient(fake):
    fake.fail("GET", "serverInfo$", status=503, headers={"Retry-After": "2"})
    t = tracker(fake)
    started = time.monotonic()
    with pytest.raises(TrackerError) as info:
        t.projects()
    assert time.monotonic() - started < 1.0 and info.value.transient
    assert t.projects() == ["OPS"]  # not cached broken


def test_missing_issue_is_not_found(fake):
    with pytest.raises(NotFound, match="OPS-404"):
        tracker(fake).fetch_incident(ref(fake, "OPS-404"))


def test_bad_credentials_are_not_transient_and_never_leak(fake):
    secret = "wrong-s3cret-value"
    creds = {"email": fake.email, "token": secret} if fake.cloud else {"pat": secret}
    t = JiraTracker(fake.url, timeout=2, **creds)
    with pytest.raises(TrackerError) as info:
        t.fetch_incident(ref(fake, "OPS-1"))
    assert not info.value.transient and "HTTP 401" in str(info.value)
    rendered = "".join(traceback.format_exception(info.value))
    for leak in (secret, fake.token, fake.pat, "Authorization", "Basic ", "Bearer "):
        assert leak not in rendered


def test_forbidden_is_not_transient(fake):
    key = fake.add_issue("OPS", "Outage", "x")
    fake.fail("POST", r"/comment$", status=403)
    with pytest.raises(TrackerError) as info:
        tracker(fake).upsert_comment(ref(fake, key), "[pmguard]", "[pmguard] hi")
    assert not info.value.transient and "HTTP 403" in str(info.value)


def test_timeout_is_transient(fake):
    key = fake.add_issue("OPS", "Outage", "x")
    fake.delay("GET", rf"/issue/{key}$", seconds=1.5)
    t = tracker(fake, timeout=0.5)
    t.projects()
    with pytest.raises(TrackerError, match="timed out") as info:
        t.fetch_incident(ref(fake, key))
    assert info.value.transient


def test_connection_refused_is_transient():
    with FakeJira("Server") as fake:
        url, creds = fake.url, fake.credentials()
    with pytest.raises(TrackerError, match="connection failed") as info:
        JiraTracker(url, timeout=1, **creds).projects()
    assert info.value.transient


def test_confluence_errors_map_like_jira(fake):
    fake.add_confluence_page(42, "PM", "<p>x</p>")
    fake.fail("GET", r"/wiki/rest/api/content/42$", status=429, headers={"Retry-After": "3"})
    with pytest.raises(TrackerError) as info:
        tracker(fake).fetch_postmortem(PostmortemRef("confluence", "42"))
    assert info.value.transient and info.value.retry_after == 3
    fake.fail("GET", r"/wiki/rest/api/content/42$", status=401)
    with pytest.raises(TrackerError) as info:
        tracker(fake).fetch_postmortem(PostmortemRef("confluence", "42"))
    assert not info.value.transient
    assert fake.token not in str(info.value) and fake.pat not in str(info.value)


@pytest.mark.parametrize("fake_jira", ["Cloud", "Server"], indirect=True)
def test_the_shared_fixture_serves_both_deployments(fake_jira):  # noqa: F811
    assert fake_jira.deployment in ("Cloud", "Server") and fake_jira.url.startswith("http://127.")
    key = fake_jira.add_issue("OPS", "Outage", "x")
    assert tracker(fake_jira).fetch_incident(ref(fake_jira, key)).title == "Outage"


def test_storage_to_text_survives_broken_markup():
    text = storage_to_text("<p>one <b>two<ul><li>three</p></table><ac:task-list><ac:task>")
    assert "one two" in text and "three" in text


def test_tracker_needs_credentials():
    with pytest.raises(ValueError, match="jira.pat"):
        JiraTracker(SITE)


@pytest.mark.parametrize(
    ("kind", "locator", "message"),
    [
        ("issue", "../../myself", "Jira issue key"),
        ("issue", "OPS-1/../../../myself", "Jira issue key"),
        ("issue", "ops-1", "Jira issue key"),
        ("confluence", "501/../../user", "page id"),
        ("confluence", "%2e%2e", "page id"),
        ("confluence", "", "page id"),
    ],
)
def test_bad_ids_are_refused_before_any_request(fake, kind, locator, message):
    with pytest.raises(TrackerError, match=message) as info:
        tracker(fake).fetch_postmortem(PostmortemRef(kind, locator))
    assert not info.value.transient
    assert fake.requests == []


def test_a_scope_refuses_other_projects_and_spaces(fake):
    from connector.base import OutsideScope, ReadScope

    fake.add_project("SEC")
    secret = fake.add_issue("SEC", "Secret PM", "secret words", issue_type="Postmortem")
    page = fake.add_confluence_page(901, "Secret page", "<p>secret words</p>", space="SEC")
    ok_page = fake.add_confluence_page(902, "Our page", "<p>our words</p>", space="ENG")
    t = tracker(fake)
    scope = ReadScope(jira=frozenset({"OPS"}), confluence=frozenset({"ENG"}))
    with pytest.raises(OutsideScope):
        t.fetch_postmortem(PostmortemRef("issue", secret), scope=scope)
    with pytest.raises(OutsideScope):
        t.fetch_postmortem(PostmortemRef("url", f"{fake.url}/browse/{secret}"), scope=scope)
    with pytest.raises(OutsideScope):  # the URL names the space: no request
        t.fetch_postmortem(PostmortemRef("url", page, page), scope=scope)
    with pytest.raises(OutsideScope):
        t.fetch_postmortem(PostmortemRef("confluence", "901"), scope=ReadScope())
    assert fake.requests == []
    # By id the space is only known from the page's answer; its body is never returned.
    with pytest.raises(OutsideScope, match="page 901 is outside") as info:
        t.fetch_postmortem(PostmortemRef("confluence", "901"), scope=scope)
    assert "secret" not in str(info.value).replace("Secret", "")
    assert fake.calls("GET", r"/content/901$")
    ours = t.fetch_postmortem(PostmortemRef("url", ok_page, ok_page), scope=scope)
    assert ours.text == "our words\n" and ours.source == "Confluence space ENG"
    issue = t.fetch_postmortem(PostmortemRef("issue", fake.add_issue("OPS", "PM", "x")))
    assert issue.source == "Jira project OPS"


def test_an_issue_moved_to_another_project_is_refused_on_its_answer(fake):
    from connector.base import OutsideScope, ReadScope

    old = fake.add_issue("OPS", "PM", "secret words", issue_type="Postmortem")
    new = fake.move_issue(old, "SEC")
    assert new.startswith("SEC-")
    t = tracker(fake)
    # The old key looks like our project's; Jira answers with the moved issue's new key.
    with pytest.raises(OutsideScope, match=f"{old} is outside"):
        t.fetch_postmortem(PostmortemRef("issue", old), scope=ReadScope(jira=frozenset({"OPS"})))
    assert t.fetch_postmortem(PostmortemRef("issue", old)).source == "Jira project SEC"
