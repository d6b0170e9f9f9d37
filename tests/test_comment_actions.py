"""The ticket comment keeps blame sentences, a missing section and what the action items
lack apart (issue 11): a missing section is never quoted as a sentence (`line 1, "#"`)."""

from __future__ import annotations

from check import comment
from check.verdict import NEEDS_REVIEW, OK, check
from connector.base import Comment, Incident, IncidentRef, Postmortem, PostmortemRef
from rules.incident_policy import IncidentPolicy

REF = IncidentRef("github", "https://api.github.com", "acme/ops", "41")


def incident() -> Incident:
    return Incident(
        ref=REF, title="API down", body="Postmortem: #12", body_format="markdown",
        state="closed", url="https://github.com/acme/ops/issues/41", labels=("incident",),
        severity=None, comments=(Comment("1", "ana", "closing"),), linked=(),
    )


def postmortem(text: str) -> Postmortem:
    return Postmortem(PostmortemRef("issue", "acme/ops#12"), "PM 12", text, "markdown",
                      "https://github.com/acme/ops/issues/12")


def render(text: str, model: str) -> tuple[str, str]:
    policy = IncidentPolicy()
    verdict = check(incident(), [postmortem(text)], policy, model=model)
    return verdict.status, comment.render(incident(), verdict, policy)


def test_missing_section_is_one_line_apart_from_blame_sentences(model: str) -> None:
    source = (
        "# Outage\n\nThe cache expired early. Dana carelessly deleted the wrong volume.\n"
    )
    status, body = render(source, model)
    assert status == NEEDS_REVIEW
    blame, _, actions = body.partition("What will change because of this incident:")
    assert "carelessly" in blame
    assert 'line 1, “#”' not in body and "“#”" not in body
    # Flags point at people and nothing says what will change: one systems finding stands
    # for the missing section, never listed among the sentences.
    assert "points at people" not in blame
    assert actions.count("points at people, and no action-items section") == 1
    assert "No action-items section was found" not in body


def test_missing_section_without_blame_is_one_line(model: str) -> None:
    status, body = render("# Outage\n\nThe cache expired early.\n", model)
    assert status == NEEDS_REVIEW
    assert "A few sentences read as if they point at people" not in body
    assert "“#”" not in body
    _, _, actions = body.partition("What will change because of this incident:")
    assert actions.count("No action-items section was found") == 1


def test_what_the_items_lack_is_said_in_one_sentence(model: str) -> None:
    source = (
        "# Outage\n\nThe cache expired early.\n\n"
        "## What will we do differently, and where does it live?\n\n"
        "- Add a TTL check to the cache client (owner: @cache, #31)\n"
        "- Rehearse the cache failover\n"
        "- Retrain the engineer on cache settings\n"
    )
    status, body = render(source, model)
    assert "A few sentences read as if they point at people" not in body
    assert "Action items: 2 of 3 items have no owner; 2 of 3 items have no tracking link" in body
    assert "1 of 3 asks people to change rather than the system (line 9)" in body
    # The TTL check is a test of sorts but not a lesson home word; an alert or a runbook is.
    assert "where the lesson lives" in body
    assert status in (NEEDS_REVIEW, OK)


def test_owned_linked_items_with_a_home_read_as_in_place(model: str) -> None:
    source = (
        "# Outage\n\nThe cache expired early.\n\n"
        "## What will we do differently, and where does it live?\n\n"
        "- Add an alert on cache TTL drift (owner: @cache, #31)\n"
        "- Update the cache runbook with the TTL check (owner: @sre, #32)\n"
    )
    status, body = render(source, model)
    assert status == OK
    assert "its action items are in place" in body
    assert "What will change because of this incident" not in body


def test_person_remediation_only_asks_for_a_systems_change(model: str) -> None:
    from nlp.analysis import analyse
    from rules.policy import ActionPolicy

    source = (
        "# Outage\n\nDana carelessly deleted the wrong volume.\n\n## Follow-ups\n\n"
        "- Retrain the engineer on volume handling\n- Kai to attend storage training\n"
    )
    rules = [f.rule for f in analyse(source, model=model).findings]
    assert rules.count("actions.systems-action") == 1
    off = analyse(source, model=model, policy=ActionPolicy(require_systems_action=False))
    assert "actions.systems-action" not in [f.rule for f in off.findings]
    fixed = source + "- Add a confirmation prompt naming the volume before deletes\n"
    assert "actions.systems-action" not in [f.rule for f in analyse(fixed, model=model).findings]
    calm = source.replace("Dana carelessly deleted", "A script deleted")
    assert "actions.systems-action" not in [f.rule for f in analyse(calm, model=model).findings]
