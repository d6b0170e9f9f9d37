"""Action items: reading one item, finding the section, and the findings policy asks for.

Item-level parsing is tested on strings; everything about sections goes through
`nlp.text.parse`, as the analysis does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nlp.actions import (
    ActionCheck,
    action_sections,
    check_action_items,
    column_role,
    find_due,
    find_owner,
    find_tracking,
    in_action_section,
    is_struck,
    parse_item,
    read_date,
    status_done,
)
from rules.policy import ActionPolicy
from tests.conftest import SHARED

DEFAULT = ActionPolicy()
STRICT = ActionPolicy(require_owner=True, require_tracking=True, require_due=True)


def parse(source: str, fmt: str = "markdown"):
    textmod = pytest.importorskip("nlp.text")
    return textmod.parse(source, fmt)


def check(source: str, policy: ActionPolicy = DEFAULT, fmt: str = "markdown"):
    doc = parse(source, fmt)
    result = check_action_items(doc, policy)
    for f in result.findings:
        assert f.text == source[f.start : f.end]
        assert f.category == "action-items"
        assert (f.line, f.column) == doc.line_col(f.start)
        assert (f.end_line, f.end_column) == doc.line_col(f.end)
        for words in (f.message, f.suggestion):
            assert not re.search(r"\byou(?:r|rs|rself)?\b", words, re.IGNORECASE), words
    return result


def rules_of(result: ActionCheck) -> list[str]:
    return [f.rule for f in result.findings]


# --------------------------------------------------------------------------- owner


@pytest.mark.parametrize(
    ("item", "owner"),
    [
        ("Add a disk-space alert @sre-oncall", "@sre-oncall"),
        ("Add a disk-space alert (owner: @storage)", "@storage"),
        ("Owner: Priya Raman. Add a disk-space alert", "Priya Raman"),
        ("owner: @platform/infra — tune the autoscaler", "@platform/infra"),
        ("Tune the autoscaler (Owner: Payments team, due 2024-06-01)", "Payments team"),
        ("Tune the autoscaler. Assignee: Kenji", "Kenji"),
        ("Tune the autoscaler, assigned to the database team", "the database team"),
        ("Tune the autoscaler - DRI: Amara", "Amara"),
    ],
)
def test_owner_forms(item, owner):
    assert find_owner(item) == owner


@pytest.mark.parametrize(
    "item",
    [
        "[Sam] Tune the autoscaler",
        "Tune the autoscaler",
        "Email ops@example.com when the job fails",
        "Owner: TBD — tune the autoscaler",
        "Owner: ? tune the autoscaler",
        "Run `@decorator` checks in CI",
    ],
)
def test_not_an_owner(item):
    assert find_owner(item) is None


# --------------------------------------------------------------------------- tracking


@pytest.mark.parametrize(
    ("item", "source", "tracking"),
    [
        ("Add a lag alert (#412)", "", ("#412",)),
        ("Add a lag alert, see acme/ingest#412", "", ("acme/ingest#412",)),
        ("Add a lag alert: OPS-1234", "", ("OPS-1234",)),
        ("Add a lag alert (INFRA2-7)", "", ()),  # digits in a project key are not read
        (
            "Add a lag alert (link)",
            "Add a lag alert (<https://tracker.example.com/browse/OPS-9>)",
            ("https://tracker.example.com/browse/OPS-9",),
        ),
        (
            "Add a lag alert, tracked in issue 7",
            "Add a lag alert, tracked in [issue 7](https://github.com/acme/ingest/issues/7).",
            ("https://github.com/acme/ingest/issues/7",),
        ),
        ("Add a lag alert (GH-88, OPS-3, #9)", "", ("GH-88", "OPS-3", "#9")),
    ],
)
def test_tracking_forms(item, source, tracking):
    assert find_tracking(item, source) == tracking


@pytest.mark.parametrize(
    "item",
    [
        "Reject payloads that are not UTF-8",
        "Pin the image by SHA-256 digest",
        "Write timestamps as ISO-8601",
        "Fail over from US-EAST-1 to EU-WEST-2",
        "Patch CVE-2024-3094 on the build hosts",
        "Treat SEV-1 pages as paging the manager too",
        "Switch to TLS-13 ciphers",
        "Rename AB-12c to something clearer",
        "Escape &#123; in templates",
        "Rotate keys every 90 days",
    ],
)
def test_not_tracking(item):
    assert find_tracking(item, item) == ()


def test_tracking_is_deduplicated_and_url_keys_not_repeated():
    source = "Fix it https://jira.example.com/browse/OPS-7 (OPS-7)"
    assert find_tracking("Fix it link (OPS-7)", source) == (
        "https://jira.example.com/browse/OPS-7",
        "OPS-7",
    )


# --------------------------------------------------------------------------- due dates


@pytest.mark.parametrize(
    ("item", "iso", "raw"),
    [
        ("Add a lag alert, due 2024-06-01", "2024-06-01", "2024-06-01"),
        ("Add a lag alert. Due: 2024-06-01", "2024-06-01", "2024-06-01"),
        ("Add a lag alert by 2024-06-01", "2024-06-01", "2024-06-01"),
        ("Add a lag alert by June 1, 2024", "2024-06-01", "June 1, 2024"),
        ("Add a lag alert (due: 1 Jun 2024)", "2024-06-01", "1 Jun 2024"),
        ("Add a lag alert, deadline 3rd of March 2025", "2025-03-03", "3rd of March 2025"),
        ("Add a lag alert, due 13/06/2024", "2024-06-13", "13/06/2024"),
        ("Add a lag alert, due 06/13/2024", "2024-06-13", "06/13/2024"),
        ("Add a lag alert, due 03/04/2024", None, "03/04/2024"),  # March or April?
        ("Add a lag alert by Q3 2024", None, "Q3 2024"),
        ("Add a lag alert, target: end of June 2025", None, "end of June 2025"),
        ("Add a lag alert by next sprint", None, "next sprint"),
        ("Add a lag alert, due 2024-02-30", None, "2024-02-30"),
    ],
)
def test_due_forms(item, iso, raw):
    assert find_due(item) == (iso, raw)


@pytest.mark.parametrize(
    "item",
    [
        "Add a lag alert",
        "The outage was caused by 2 bad deploys",
        "2024-06-01: the alert fired late",  # a date, but not a due date
        "Page by phone as well as by Slack",
    ],
)
def test_no_due(item):
    assert find_due(item) == (None, None)


def test_read_date_unanchored():
    assert read_date("Sprint ends 2024-07-05 (Fri)", anchored=False) == ("2024-07-05", "2024-07-05")
    assert read_date("nothing here") == (None, None)


# --------------------------------------------------------------------------- done


@pytest.mark.parametrize(
    ("item", "source", "done"),
    [
        ("Add a lag alert", "", None),
        ("DONE: add a lag alert", "", True),
        ("Done - add a lag alert", "", True),
        ("Add a lag alert ✅", "", True),
        ("Add a lag alert (completed)", "", True),
        ("Add a lag alert. Status: closed", "", True),
        ("Add a lag alert. Status: in progress", "", False),
        ("Add a lag alert [planned]", "", False),
        ("TODO add a lag alert", "", False),
        ("Make sure the alert is done right", "", None),
        ("Add a lag alert", "- ~~Add a lag alert~~", True),
        ("Add a lag alert", "1. [ ] ~~Add a lag alert~~.", True),
        ("Add a lag alert", "- Add a ~~lag~~ alert", None),
    ],
)
def test_done_forms(item, source, done):
    assert parse_item(item, source)["done"] is done


def test_struck_and_status_helpers():
    assert is_struck("* <del>Add a lag alert</del>")
    assert is_struck("* -Add a lag alert-", "jira")
    assert not is_struck("* -Add a lag alert-", "markdown")
    assert status_done("Complete") is True
    assert status_done("✅") is True
    assert status_done("In progress") is False
    assert status_done("Not started") is False
    assert status_done("see board") is None
    assert status_done("") is None


# --------------------------------------------------------------------------- lesson home


@pytest.mark.parametrize(
    ("item", "source", "home"),
    [
        (
            "Update the failover runbook (link)",
            "Update the failover runbook (https://wiki.example.com/db/failover)",
            "https://wiki.example.com/db/failover",
        ),
        ("Add the canary step to the deploy checklist", "", "deploy checklist"),
        ("Write an ADR on retry budgets", "", "ADR"),
        ("Document the restore drill in the on-call handbook", "", "on-call handbook"),
        (
            "Restore drill steps",
            "Restore drill steps: https://example.com/wiki/Restore_Drill",
            "https://example.com/wiki/Restore_Drill",
        ),
    ],
)
def test_lesson_home_found(item, source, home):
    assert parse_item(item, source)["lesson_home"] == home


@pytest.mark.parametrize(
    "item",
    [
        "The runbook was out of date",  # no change, no link
        "Add alerting on replica lag",  # a change, but not to a lesson home
        "Update the docs.rs build to clean up temp files",  # docs.rs is not docs
        "Documentation",  # "document…" as the only verb is the mention itself
    ],
)
def test_lesson_home_not_found(item):
    assert parse_item(item, item)["lesson_home"] is None


def test_lesson_home_words_are_configurable():
    item = "Add the replica-lag step to the ops bible"
    assert parse_item(item, item)["lesson_home"] is None
    found = parse_item(item, item, lesson_home_words=("ops bible",))["lesson_home"]
    assert found == "ops bible"


def test_parse_item_keys():
    info = parse_item("Add a lag alert @sre OPS-1 due 2024-06-01", "")
    assert set(info) == {"owner", "tracking", "due", "due_raw", "done", "lesson_home"}
    assert info["owner"] == "@sre"
    assert info["tracking"] == ("OPS-1",)
    assert info["due"] == "2024-06-01"


@pytest.mark.parametrize(
    ("header", "role"),
    [
        ("Owner", "owner"),
        ("Assignee(s)", "owner"),
        ("Who", "owner"),
        ("Due date", "due"),
        ("Deadline", "due"),
        ("Status", "status"),
        ("Done?", "status"),
        ("Ticket", "tracking"),
        ("Jira", "tracking"),
        ("Issue / PR", "tracking"),
        ("Action", None),
        ("Priority", None),
    ],
)
def test_column_roles(header, role):
    assert column_role(header) == role


# --------------------------------------------------------------------------- sections

# Every postmortem below is written for these tests.

FULL = """\
# Checkout latency, 2024-05-14

## Summary

Checkout requests slowed to 9 seconds for 40 minutes after a cache node was replaced.

## Action items

- Alert when cache hit ratio drops below 80% (owner: @checkout-oncall, due 2024-06-01, OPS-812)
- Update the cache replacement runbook (https://wiki.example.com/cache/replace) \
@platform by 2024-06-15 #77

## Lessons learned

The cache warm-up step lived only in one engineer's notes.
"""


def test_well_formed_section_has_no_findings():
    result = check(
        FULL,
        ActionPolicy(
            require_owner=True, require_tracking=True, require_due=True, require_lesson_home=True
        ),
    )
    assert result.section_found
    assert result.findings == ()
    first, second = result.items
    assert first.owner == "@checkout-oncall"
    assert first.tracking == ("OPS-812",)
    assert first.due == "2024-06-01"
    assert first.line == 9 and first.column == 3
    assert second.owner == "@platform"
    assert second.lesson_home == "https://wiki.example.com/cache/replace"
    assert "https://wiki.example.com/cache/replace" in second.tracking
    assert "#77" in second.tracking
    assert second.due == "2024-06-15"


def test_missing_section_points_at_first_character():
    source = "# Checkout latency\n\nThe cache node was replaced.\n"
    result = check(source)
    assert not result.section_found
    assert result.items == ()
    (finding,) = result.findings
    assert finding.rule == "actions.missing-section"
    assert finding.severity == "warning"
    assert (finding.start, finding.end, finding.text) == (0, 1, "#")
    assert (finding.line, finding.column, finding.end_line, finding.end_column) == (1, 1, 1, 2)
    assert "Action items" in finding.suggestion


def test_missing_section_in_empty_source():
    (finding,) = check("").findings
    assert finding.rule == "actions.missing-section"
    assert (finding.start, finding.end, finding.text) == (0, 0, "")
    assert (finding.line, finding.column) == (1, 1)


def test_missing_section_not_required_when_min_items_is_zero():
    result = check(
        "# Checkout latency\n\nThe cache node was replaced.\n", ActionPolicy(min_items=0)
    )
    assert result.findings == ()
    assert not result.section_found


def test_empty_section_points_at_heading():
    source = "# Checkout latency\n\n## Action items\n\n-\n\n## Lessons learned\n\n- Cache.\n"
    result = check(source)
    assert result.section_found
    assert result.items == ()
    (finding,) = result.findings
    assert finding.rule == "actions.empty-section"
    assert finding.severity == "warning"
    assert finding.text == "Action items"
    assert (finding.line, finding.column) == (3, 4)
    assert "'Action items'" in finding.message


def test_empty_section_with_only_template_placeholders():
    source = (
        "## Follow-ups\n\n_Copy these from the review meeting_\n\n- [ ] \n- TBD\n\n"
        "## Anything else\n"
    )
    assert rules_of(check(source)) == ["actions.empty-section"]
    assert rules_of(check(source, ActionPolicy(min_items=0))) == []


def test_too_few_items():
    source = "## Next steps\n\n- Alert on cache hit ratio\n"
    (finding,) = check(source, ActionPolicy(min_items=2)).findings
    assert finding.rule == "actions.too-few-items"
    assert finding.severity == "warning"
    assert finding.text == "Next steps"
    assert "1 action item;" in finding.message and "at least 2" in finding.message
    assert check(source, ActionPolicy(min_items=1)).findings == ()


@pytest.mark.parametrize(
    "heading",
    [
        "## Action items",
        "### 5. Action Items (owner, due)",
        "## 🛠️ Follow-ups",
        "## Follow up actions",
        "## Remediations",
        "## Corrective and preventive actions",
        "## What we'll do differently",
        "## Lessons learned and action items",
        "#### Preventive measures",
        "## Improvements",
        "Next steps\n----------",
    ],
)
def test_heading_variants_open_a_section(heading):
    source = f"# Queue backlog\n\nIngestion lagged.\n\n{heading}\n\n- Add a lag alert\n"
    result = check(source)
    assert result.section_found
    assert [i.text for i in result.items] == ["Add a lag alert"]


def test_section_ends_at_same_level_heading_and_keeps_subheadings():
    source = """\
## Remediation

### Immediate actions (completed)

- Move pool timeouts to runtime configuration

### Planned actions

1. Split read and write connection pools
2. Add circuit breakers to the flag service

## Lessons learned

- Retries amplified the load.
"""
    result = check(source)
    assert [i.text for i in result.items] == [
        "Move pool timeouts to runtime configuration",
        "Split read and write connection pools",
        "Add circuit breakers to the flag service",
    ]
    assert [i.done for i in result.items] == [True, None, None]
    doc = parse(source)
    (section,) = action_sections(doc, ActionPolicy())
    assert section.title == "Remediation"
    lessons = [b for b in doc.blocks if "Retries" in b.text][0]
    assert not in_action_section(lessons, ActionPolicy(), doc)
    planned = [b for b in doc.blocks if "circuit" in b.text][0]
    assert in_action_section(planned, ActionPolicy(), doc)
    assert in_action_section(planned, ActionPolicy())


def test_two_sections_items_are_combined_and_empty_one_is_not_reported():
    source = (
        "## Follow-ups\n\n## Timeline\n\n- 10:02 page\n\n## Action items\n\n- Add a lag alert\n"
    )
    result = check(source)
    assert [i.text for i in result.items] == ["Add a lag alert"]
    assert result.findings == ()


def test_nested_bullets_merge_into_parent():
    source = """\
## Action items

- Add a replica-lag alert
  - Owner: @db-oncall
  - Tracked in OPS-51, due 2024-07-01
- Rehearse the failover quarterly
  - [Notes](https://notes.example.com/failover)
"""
    result = check(source, STRICT)
    first, second = result.items
    assert first.text == "Add a replica-lag alert"
    assert first.owner == "@db-oncall"
    assert first.tracking == ("OPS-51",)
    assert first.due == "2024-07-01"
    assert second.tracking == ("https://notes.example.com/failover",)
    assert rules_of(result) == ["actions.missing-owner", "actions.missing-due"]
    for finding in result.findings:
        assert finding.text == "Rehearse the failover quarterly"
        assert finding.severity == "info"
        assert finding.sentence == "Rehearse the failover quarterly"


def test_checklist_items_done_or_not():
    source = """\
## Action items

- [x] Fix the certificate renewal profile
- [ ] Run a full configuration apply when a host rejoins production
- [X] ~~Rotate the leaked certificate~~
"""
    result = check(source, ActionPolicy(require_owner=True, require_due=True))
    assert [i.done for i in result.items] == [True, False, True]
    # Done items need no owner or due date any more; the open one does.
    assert rules_of(result) == ["actions.missing-owner", "actions.missing-due"]
    assert result.findings[0].line == 4


def test_strikethrough_marks_done():
    source = "## Action items\n\n- ~~Drop the legacy cron job~~\n- Add a lag alert\n"
    assert [i.done for i in check(source).items] == [True, None]


def test_table_rows_read_by_header():
    source = """\
## Action items

| Action | Owner | Due | Status | Ticket |
|---|---|---|---|---|
| Alert on replica lag | @db-oncall | 2024-07-01 | Done | OPS-51 |
| Rehearse failover | Dana Wu | June 30, 2024 | In progress | [#9](https://gh.example/db/9) |
| Update the failover runbook | TBD | | Open | |
"""
    result = check(source, STRICT)
    a, b, c = result.items
    assert (a.text, a.owner, a.due, a.done, a.tracking) == (
        "Alert on replica lag",
        "@db-oncall",
        "2024-07-01",
        True,
        ("OPS-51",),
    )
    assert (b.owner, b.due, b.done) == ("Dana Wu", "2024-06-30", False)
    assert b.tracking == ("https://gh.example/db/9", "#9")
    assert (c.owner, c.due, c.done, c.tracking) == (None, None, False, ())
    assert c.lesson_home == "failover runbook"
    assert rules_of(result) == [
        "actions.missing-owner",
        "actions.missing-tracking",
        "actions.missing-due",
    ]
    for finding in result.findings:
        assert finding.line == 7
        assert finding.text.startswith("Update the failover runbook")


def test_paragraph_only_section_counts_sentences():
    source = (
        "## Prevention\n\nWe will add a replica-lag alert. We will rehearse failover "
        "every quarter (OPS-60).\n\n## Timeline\n"
    )
    result = check(source, ActionPolicy(require_tracking=True))
    assert [i.text for i in result.items] == [
        "We will add a replica-lag alert.",
        "We will rehearse failover every quarter (OPS-60).",
    ]
    (finding,) = result.findings
    assert finding.rule == "actions.missing-tracking"
    assert finding.text == "We will add a replica-lag alert."


def test_intro_paragraph_is_ignored_when_there_is_a_list():
    source = "## Action items\n\nThese came out of the review:\n\n- Add a lag alert\n"
    assert [i.text for i in check(source).items] == ["Add a lag alert"]


@pytest.mark.parametrize(
    "label",
    ["**Action items:**", "**Action items**", "Action items:", "__Follow-ups:__"],
)
def test_bold_label_paragraph_opens_a_section(label):
    source = (
        f"# Queue backlog\n\nIngestion lagged.\n\n{label}\n\n- Add a lag alert\n\nThanks all.\n"
    )
    result = check(source)
    assert result.section_found
    assert [i.text for i in result.items] == ["Add a lag alert"]


def test_label_followed_by_none_so_far_is_an_empty_section():
    # The label is there; "None so far." plans nothing, so the section is empty, not absent.
    source = "# Queue backlog\n\nAction items:\n\nNone so far.\n"
    assert rules_of(check(source)) == ["actions.empty-section"]


def test_each_requirement_knob():
    source = "## Action items\n\n- Raise the pool limit\n"
    assert check(source).findings == ()
    for knob, rule in [
        ("require_owner", "actions.missing-owner"),
        ("require_tracking", "actions.missing-tracking"),
        ("require_due", "actions.missing-due"),
        ("require_lesson_home", "actions.no-lesson-home"),
    ]:
        result = check(source, ActionPolicy(**{knob: True}))
        assert rules_of(result) == [rule], knob
        assert result.findings[0].severity == "info"


def test_requirements_met():
    source = (
        "## Action items\n\n"
        "- Add a lag alert (owner: @sre, due Q3 2024, OPS-1)\n"
        "- Add the lag check to the deploy checklist @sre #5 by 2024-09-01\n"
    )
    policy = ActionPolicy(
        require_owner=True, require_tracking=True, require_due=True, require_lesson_home=True
    )
    result = check(source, policy)
    assert result.findings == ()
    assert result.items[0].due is None  # Q3 2024 satisfies the policy but is not a date
    assert result.items[1].lesson_home == "deploy checklist"


def test_no_lesson_home_points_at_heading():
    source = "# Outage\n\n## Corrective actions\n\n- Raise the pool limit\n"
    (finding,) = check(source, ActionPolicy(require_lesson_home=True)).findings
    assert finding.rule == "actions.no-lesson-home"
    assert finding.text == "Corrective actions"
    assert finding.line == 3
    assert "runbook" in finding.suggestion


def test_lesson_home_ignores_non_item_paragraphs():
    source = (
        "## Action items\n\nThe runbook was wrong; see the wiki.\n\n- Raise the pool limit\n\n"
        "## Lessons learned\n\n- Update the runbook.\n"
    )
    result = check(source, ActionPolicy(require_lesson_home=True))
    assert rules_of(result) == ["actions.no-lesson-home"]


def test_item_positions_and_findings_cover_whole_block():
    source = "## Action items\n\n* Add a lag alert\n  across two lines\n"
    result = check(source, ActionPolicy(require_owner=True))
    (finding,) = result.findings
    assert finding.text == "Add a lag alert\n  across two lines"
    assert (finding.line, finding.column, finding.end_line, finding.end_column) == (3, 3, 4, 19)
    assert (result.items[0].line, result.items[0].column) == (3, 3)


def test_jira_markup():
    source = (
        "h1. Queue backlog\n\nIngestion lagged.\n\n"
        "h2. Action items\n\n"
        "* Add a lag alert [~dana] OPS-77 due 2024-08-01\n"
        "* Update the [ingest runbook|https://wiki.example.com/ingest]\n\n"
        "h2. Lessons learned\n"
    )
    result = check(
        source, ActionPolicy(require_tracking=True, require_lesson_home=True), fmt="jira"
    )
    assert [i.text.split()[0] for i in result.items] == ["Add", "Update"]
    assert result.items[0].tracking == ("OPS-77",)
    assert result.items[0].due == "2024-08-01"
    assert result.items[1].tracking == ("https://wiki.example.com/ingest",)
    assert result.items[1].lesson_home == "https://wiki.example.com/ingest"
    assert result.findings == ()


def _adf_text(value: str, href: str | None = None) -> dict:
    node: dict = {"type": "text", "text": value}
    if href:
        node["marks"] = [{"type": "link", "attrs": {"href": href}}]
    return node


def test_adf_document():
    adf = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [_adf_text("Action items")]},
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [
                                    _adf_text("Add a lag alert, due 2024-08-01, see "),
                                    _adf_text("OPS-9", "https://jira.example.com/browse/OPS-9"),
                                ],
                            },
                        ],
                    },
                    {
                        "type": "listItem",
                        "content": [
                            {
                                "type": "paragraph",
                                "content": [
                                    _adf_text("Rehearse failover"),
                                ],
                            },
                        ],
                    },
                ],
            },
        ],
    }
    source = json.dumps(adf)
    result = check(source, ActionPolicy(require_tracking=True, require_due=True), fmt="adf")
    first, second = result.items
    assert first.due == "2024-08-01"
    assert "https://jira.example.com/browse/OPS-9" in first.tracking
    assert second.tracking == ()
    assert rules_of(result) == ["actions.missing-tracking", "actions.missing-due"]
    assert {f.text for f in result.findings} == {"Rehearse failover"}


def test_jira_table_with_header_cells():
    source = (
        "h2. Follow-ups\n\n"
        "||Action||Owner||Due||Ticket||\n"
        "|Add a lag alert|[~dana]|2024-08-01|OPS-1|\n"
        "|Rehearse failover| |Q4 2024|[tracked|https://jira.example.com/browse/OPS-2]|\n"
    )
    result = check(source, STRICT, fmt="jira")
    first, second = result.items
    assert (first.text, first.owner, first.due, first.tracking) == (
        "Add a lag alert",
        "@dana",
        "2024-08-01",
        ("OPS-1",),
    )
    assert (second.owner, second.due) == (None, None)
    assert second.tracking == ("https://jira.example.com/browse/OPS-2",)
    # Q4 2024 is a due date of sorts: only the owner is missing.
    assert rules_of(result) == ["actions.missing-owner"]
    assert result.findings[0].line == 5


def _adf(*content: dict) -> str:
    return json.dumps({"type": "doc", "version": 1, "content": list(content)})


def _cell(kind: str, *inline: dict) -> dict:
    return {"type": kind, "content": [{"type": "paragraph", "content": list(inline)}]}


def test_adf_task_list_and_table():
    source = _adf(
        {"type": "heading", "attrs": {"level": 2}, "content": [_adf_text("Action items")]},
        {
            "type": "taskList",
            "attrs": {"localId": "t"},
            "content": [
                {
                    "type": "taskItem",
                    "attrs": {"localId": "a", "state": "DONE"},
                    "content": [_adf_text("Raise the connection pool limit")],
                },
                {
                    "type": "taskItem",
                    "attrs": {"localId": "b", "state": "TODO"},
                    "content": [_adf_text("Rehearse failover, owner: SRE")],
                },
            ],
        },
        {
            "type": "table",
            "content": [
                {
                    "type": "tableRow",
                    "content": [
                        _cell("tableHeader", _adf_text("Action")),
                        _cell("tableHeader", _adf_text("Ticket")),
                    ],
                },
                {
                    "type": "tableRow",
                    "content": [
                        _cell("tableCell", _adf_text("Fix the cleanup cron")),
                        _cell(
                            "tableCell",
                            {
                                "type": "inlineCard",
                                "attrs": {"url": "https://jira.example.com/browse/OPS-3"},
                            },
                        ),
                    ],
                },
            ],
        },
    )
    result = check(source, ActionPolicy(require_owner=True, require_tracking=True), fmt="adf")
    pool, failover, cron = result.items
    assert (pool.done, failover.done, cron.done) == (True, False, None)
    assert failover.owner == "SRE"
    assert cron.tracking == ("https://jira.example.com/browse/OPS-3",)
    assert [(f.rule, f.text) for f in result.findings[:2]] == [
        ("actions.missing-tracking", "Raise the connection pool limit"),
        ("actions.missing-tracking", "Rehearse failover, owner: SRE"),
    ]
    # A table row's finding spans the row: here from the first cell's text to the last's.
    row = result.findings[2]
    assert row.rule == "actions.missing-owner"
    assert row.text.startswith("Fix the cleanup cron")
    assert row.text.endswith("https://jira.example.com/browse/OPS-3")


def test_italic_guidance_paragraph_is_not_an_item():
    source = "## Follow-ups\n\n_Copy these from the review meeting notes_\n\n## Anything else\n"
    assert rules_of(check(source)) == ["actions.empty-section"]


def test_tracking_named_in_a_subheading_covers_its_items():
    source = """\
## Remediation

### Short-term ([tracked here](https://github.com/acme/flags/issues/390))

- Separate read and write pools

### Long-term

- Load-test the pools
"""
    result = check(source, ActionPolicy(require_tracking=True))
    assert result.items[0].tracking == ("https://github.com/acme/flags/issues/390",)
    assert [(f.rule, f.text) for f in result.findings] == [
        ("actions.missing-tracking", "Load-test the pools")
    ]


def test_findings_honour_suppression_comments():
    source = (
        "## Action items\n\n"
        "<!-- pmguard-disable-next-line actions.missing-owner -- owned by the whole team -->\n"
        "- Add a lag alert\n"
        "- Rehearse failover\n"
    )
    result = check(source, ActionPolicy(require_owner=True))
    assert [(f.text, f.suppressed) for f in result.findings] == [
        ("Add a lag alert", True),
        ("Rehearse failover", False),
    ]
    assert result.findings[0].justification == "owned by the whole team"


def test_unchecked_box_with_done_text_counts_as_done():
    source = "## Action items\n\n- [ ] Add a lag alert (done)\n- [ ] Rehearse failover\n"
    assert [i.done for i in check(source).items] == [True, False]


def test_item_to_dict_round_trip():
    result = check(FULL)
    data = result.items[0].to_dict()
    assert data["owner"] == "@checkout-oncall"
    assert data["tracking"] == ["OPS-812"]


# --------------------------------------------------------------------------- finding the section
# Whole documents, one per heading shape real teams use (issue 11); the section is found by
# what its heading says, not by a list of titles.

NARRATIVE = "The queue backed up after the deploy. Ingestion lagged for an hour.\n\n"
ITEMS = "- Add a lag alert (OPS-1)\n- Rehearse the failover quarterly\n"


@pytest.mark.parametrize(
    "heading",
    [
        "## Action items",
        "### What we're doing about it",
        "## How are we preventing it from happening again?",
        "## What will we do differently, and where does it live?",
        "## Corrective and preventative actions",
        "#### Remediation",
        "## Follow-ups",
        "## Next steps",
        "## Lessons learned & actions",
        "## TODO",
        "## 5. Prevention",
        "## Review actions",
        "## Planned actions (in progress)",
        "Corrective actions\n------------------",
        "What we will change\n===================",
    ],
)
def test_markdown_heading_shapes_open_the_section(heading):
    source = f"# Queue backlog\n\n{NARRATIVE}{heading}\n\n{ITEMS}\n## Appendix\n\nGraphs.\n"
    result = check(source)
    assert result.section_found, heading
    assert [i.text for i in result.items] == [
        "Add a lag alert (OPS-1)",
        "Rehearse the failover quarterly",
    ]
    assert "actions.missing-section" not in rules_of(result)


@pytest.mark.parametrize(
    "label",
    [
        "**Next steps**",
        "**What we're doing about it:**",
        "__Prevention__",
        "Corrective actions:",
        "5. Prevention",
        "- **Actions following review**:",
    ],
)
def test_pseudo_heading_shapes_open_the_section(label):
    source = f"# Queue backlog\n\n{NARRATIVE}- **Impact**: an hour of lag\n\n{label}\n\n{ITEMS}"
    result = check(source)
    assert result.section_found, label
    assert [i.text for i in result.items][-2:] == [
        "Add a lag alert (OPS-1)",
        "Rehearse the failover quarterly",
    ]


def test_list_item_label_owns_its_nested_items_only():
    source = (
        "# Incident\n\n"
        "- **Resolution**:\n  - The cluster was recreated.\n"
        "- **Actions following review**:\n"
        "  - Spike ways to avoid applying to the wrong cluster - Ticket #3016\n"
        "  - Try 'Prevent destroy' on the zone\n"
        "- **Attendees**: the platform team\n"
    )
    result = check(source)
    assert [i.text for i in result.items] == [
        "Spike ways to avoid applying to the wrong cluster - Ticket #3016",
        "Try 'Prevent destroy' on the zone",
    ]
    assert result.items[0].tracking == ("#3016",)


def test_heading_about_the_incident_or_the_reader_does_not_open_a_section():
    source = (
        "# Outage\n\n## Actions taken\n\n- Restarted the broker\n\n"
        "## What should you do?\n\n- Rotate any token you used\n\n"
        "## Timeline of actions\n\n- 10:02 paged\n\n"
        "## What happened\n\nThe broker ran out of disk.\n"
    )
    assert rules_of(check(source)) == ["actions.missing-section"]


def test_lessons_heading_counts_only_when_its_items_are_changes():
    narrative = "# Outage\n\n## Lessons learned\n\n- The runbook was out of date\n- Paging worked\n"
    assert rules_of(check(narrative)) == ["actions.missing-section"]
    checklist = (
        "# Outage\n\n## Lessons learned\n\n### Detection\n\n"
        "- [ ] Add a disk-usage alert on the broker\n- [ ] Update the broker runbook\n"
    )
    result = check(checklist)
    assert result.section_found
    assert [i.text for i in result.items] == [
        "Add a disk-usage alert on the broker",
        "Update the broker runbook",
    ]


def test_trailing_table_of_changes_without_a_heading():
    source = (
        "# Outage\n\nThe broker ran out of disk.\n\n"
        "| Action | Owner | Due | Ticket |\n|---|---|---|---|\n"
        "| Alert on broker disk usage | @sre | 2024-07-01 | OPS-3 |\n"
        "| Rotate broker logs daily | @platform | 2024-07-15 | OPS-4 |\n\n"
        "Thanks to everyone who helped.\n"
    )
    result = check(source)
    assert result.section_found
    assert [i.owner for i in result.items] == ["@sre", "@platform"]


def test_trailing_list_of_past_steps_is_not_a_section():
    source = (
        "# Outage\n\n## Resolution\n\n- The broker was restarted.\n"
        "- Disk space was freed by the on-call engineer.\n"
    )
    assert rules_of(check(source)) == ["actions.missing-section"]


def test_heading_list_stays_an_override():
    source = f"# Outage\n\n{NARRATIVE}## Homework\n\n{ITEMS}\n## Appendix\n\nGraphs.\n"
    assert not check(source).section_found
    own = ActionPolicy(headings=("Homework",))
    assert check(source, own).section_found
    # Without detection only the listed titles count.
    listed_only = ActionPolicy(detect_headings=False)
    other = f"# Outage\n\n{NARRATIVE}## What we're doing about it\n\n{ITEMS}\n## Appendix\n"
    assert check(other).section_found
    assert not check(other, listed_only).section_found


@pytest.mark.parametrize(
    "heading",
    ["h2. Follow-ups", "h3. What we're doing about it", "*Next steps*", "h2. 5. Prevention"],
)
def test_jira_heading_shapes_open_the_section(heading):
    source = (
        f"h1. Queue backlog\n\nIngestion lagged.\n\n{heading}\n\n"
        "* Add a lag alert OPS-77\n* Rehearse the failover quarterly\n"
    )
    result = check(source, fmt="jira")
    assert result.section_found, heading
    assert [i.text for i in result.items] == [
        "Add a lag alert OPS-77",
        "Rehearse the failover quarterly",
    ]


@pytest.mark.parametrize(
    "heading",
    [
        "How are we preventing it from happening again?",
        "What will we do differently, and where does it live?",
        "Corrective actions",
    ],
)
def test_adf_heading_shapes_open_the_section(heading):
    source = _adf(
        {"type": "paragraph", "content": [_adf_text("Ingestion lagged.")]},
        {"type": "heading", "attrs": {"level": 3}, "content": [_adf_text(heading)]},
        {
            "type": "bulletList",
            "content": [
                {
                    "type": "listItem",
                    "content": [
                        {"type": "paragraph", "content": [_adf_text("Add a lag alert OPS-5")]}
                    ],
                }
            ],
        },
    )
    result = check(source, fmt="adf")
    assert result.section_found, heading
    assert [i.text for i in result.items] == ["Add a lag alert OPS-5"]


@pytest.mark.parametrize(
    "text",
    [
        "None yet — will follow up next week",
        "No action needed.",
        "TBD",
        "Nothing so far",
        "No action items at this time",
        "We will follow up later",
    ],
)
def test_statements_that_nothing_is_planned_are_not_items(text):
    result = check(f"## Action items\n\n- {text}\n")
    assert result.items == ()
    assert rules_of(result) == ["actions.empty-section"]


def test_real_items_that_mention_follow_up_stay_items():
    result = check("## Action items\n\n- Follow up with the vendor on the SLA\n- None\n")
    assert [i.text for i in result.items] == ["Follow up with the vendor on the SLA"]


def _bench_actions():
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "bench" / "actions.py"
    spec = importlib.util.spec_from_file_location("bench_actions", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (SHARED / "corpus").is_dir(), reason="../shared corpus absent")
def test_corpus_table_every_section_found_and_no_false_missing():
    rows = _bench_actions().evaluate(SHARED)
    assert len(rows) == 47  # 38 postmortems + 9 templates
    assert [r.file for r in rows if r.false_missing] == []
    assert [r.file for r in rows if r.missed] == []
    # A file the table says has no section and the check did not find one in either: its
    # "missing" is then true; count them so a regression that finds sections everywhere shows.
    assert sum(r.says_missing for r in rows if not r.has_section) >= 17


@pytest.mark.parametrize(
    ("item", "owner"),
    [
        ("Kai to attend alerting training", "Kai"),
        ("Dana Wu will rehearse the failover", "Dana Wu"),
        ("SRE: add a lag alert", "SRE"),
        ("Ask the payments-oncall team to add a check", "payments-oncall team"),
        ("Cloud Platform team to spike pre-commit hooks", "Cloud Platform team"),
        ("Speak to the namespace owner", None),
        ("Need to add an alert", None),
        ("Owner: TBD", None),
        ("Nobody to use the token going forward", None),
    ],
)
def test_owner_read_from_who_opens_the_item(item, owner):
    assert find_owner(item) == owner


@pytest.mark.parametrize(
    ("item", "home"),
    [
        ("Add an alert on replica lag", "alert"),
        ("Add a test for the migration rollback", "test"),
        ("Write a lint rule that rejects plaintext tokens", "lint rule"),
        ("Record the decision in the decision log", "decision log"),
        ("Test the failover quarterly", None),
    ],
)
def test_lesson_home_includes_what_acts_next_time(item, home):
    assert parse_item(item)["lesson_home"] == home


@pytest.mark.parametrize(
    "storage",
    [
        "<h2>What we&apos;re doing about it</h2>",
        "<h3>How are we preventing it from happening again?</h3>",
        "<p><strong>Next steps</strong></p>",
    ],
)
def test_confluence_storage_heading_shapes_open_the_section(storage):
    from connector.confluence import storage_to_text

    page = (
        "<p>The cache expired early.</p>" + storage +
        "<ul><li>Add a TTL alert OPS-5</li><li>Rehearse the cache failover</li></ul>"
        "<h2>Appendix</h2><p>Graphs.</p>"
    )
    result = check(storage_to_text(page))
    assert result.section_found, storage
    assert [i.text for i in result.items] == [
        "Add a TTL alert OPS-5",
        "Rehearse the cache failover",
    ]
