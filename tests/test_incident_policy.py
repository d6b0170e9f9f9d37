"""Which incidents need a postmortem, what counts as a link, and the comment's words."""

from __future__ import annotations

import time

import pytest

from connector.base import Comment, Incident, IncidentRef, PostmortemRef
from rules import comment
from rules.incident_policy import (
    MAX_POLICY_CHARS,
    IncidentPolicy,
    policy_from_mapping,
    postmortem_refs,
    repository_policy,
)
from rules.policy import PolicyError
from tests.yaml_bombs import billion_laughs

REF = IncidentRef("github", "https://api.github.com", "acme/ops", "41")


def incident(body: str = "", comments=(), labels=("incident",), severity=None, linked=()):
    return Incident(
        ref=REF, title="API down", body=body, body_format="markdown", state="closed",
        url="https://github.com/acme/ops/issues/41", labels=labels, severity=severity,
        comments=tuple(Comment(str(i), "ana", c) for i, c in enumerate(comments)),
        linked=linked,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Postmortem: #12", PostmortemRef("issue", "acme/ops#12")),
        ("post-mortem - acme/pm#3", PostmortemRef("issue", "acme/pm#3")),
        ("**Postmortem:** https://github.com/acme/docs/blob/main/pm/2026-11.md",
         PostmortemRef("url", "https://github.com/acme/docs/blob/main/pm/2026-11.md",
                       "https://github.com/acme/docs/blob/main/pm/2026-11.md")),
        ("PIR: https://github.com/acme/ops/issues/77",
         PostmortemRef("url", "https://github.com/acme/ops/issues/77",
                       "https://github.com/acme/ops/issues/77")),
    ],
)
def test_link_lines_in_the_body(text: str, expected: PostmortemRef) -> None:
    assert postmortem_refs(incident(f"Summary\n\n{text}\n")) == [expected]


def test_links_in_comments_count_but_not_in_the_bots_own_comment() -> None:
    inc = incident(comments=["Postmortem: #12", f"Postmortem: #99\n{comment.GITHUB_MARKER}"])
    assert [r.locator for r in postmortem_refs(inc, bot_marker=comment.GITHUB_MARKER)] == [
        "acme/ops#12"
    ]


def test_tracker_links_come_first_and_duplicates_go() -> None:
    linked = (PostmortemRef("issue", "acme/ops#12", "u"),)
    inc = incident("Postmortem: #12", linked=linked)
    assert postmortem_refs(inc) == list(linked)


def test_a_mention_of_the_word_is_not_a_link() -> None:
    assert postmortem_refs(incident("We will write a postmortem soon.")) == []


def test_severity_filter_is_opt_in() -> None:
    assert IncidentPolicy().needs_postmortem(incident(labels=("incident",)))
    policy = policy_from_mapping({"severities": ["sev1", "sev2"]}, "p")
    assert policy.needs_postmortem(incident(labels=("incident", "SEV-1")))
    assert not policy.needs_postmortem(incident(labels=("incident", "sev3")))
    assert not policy.needs_postmortem(incident(labels=("incident",)))
    assert policy.needs_postmortem(incident(labels=("incident",), severity="Sev 2"))


def test_repository_policy_overlays_the_service_policy() -> None:
    base = policy_from_mapping({"enforcement": "comment", "max_listed": 3}, "service")
    merged = repository_policy(
        "enforcement: reopen\nlabels:\n  missing: pm-missing\naction_items:\n  min_items: 2\n",
        base, "acme/ops/.github/pmguard.yml",
    )
    assert merged.enforcement == "reopen" and merged.max_listed == 3
    assert merged.labels.missing == "pm-missing" and merged.labels.ok == "postmortem:ok"
    assert merged.actions.min_items == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"enforcement": "shout"}, "'enforcement'"),
        ({"colour": 1}, "unknown key 'colour'"),
        ({"labels": {"missng": "x"}}, "'labels'"),
        ({"max_listed": 0}, "'max_listed'"),
    ],
)
def test_policy_errors_name_source_and_key(data: dict, message: str) -> None:
    with pytest.raises(PolicyError, match=f"repo.yml: .*{message}"):
        policy_from_mapping(data, "repo.yml")


def test_roster_has_author_assignees_commenters_and_mentions() -> None:
    inc = Incident(
        ref=REF, title="t", body="Paged @ines.k and @sre-team; mail ops@example.com",
        body_format="markdown", state="closed", url="u", author="ana", assignees=("bo",),
        comments=(Comment("1", "cy", "thanks @dee"),),
    )
    assert inc.roster == ("ana", "bo", "cy", "@ines.k", "@sre-team", "@dee")


# Issue 9, Medium 4: 474 bytes in a repository froze the process for 24 s at 1.27 GB.
def test_a_repository_policy_with_aliases_is_refused_fast() -> None:
    started = time.perf_counter()
    with pytest.raises(PolicyError) as err:
        repository_policy(
            billion_laughs("severities"), IncidentPolicy(), "acme/ops/.github/pmguard.yml"
        )
    assert str(err.value) == (
        "YAML aliases (*a) are not allowed in acme/ops/.github/pmguard.yml, line 3"
    )
    assert time.perf_counter() - started < 0.5


def test_an_oversized_repository_policy_is_refused_unread() -> None:
    text = "review_at: error\n" + "#" * MAX_POLICY_CHARS
    with pytest.raises(PolicyError, match=f"a/b/.github/pmguard.yml: over {MAX_POLICY_CHARS} "):
        repository_policy(text, IncidentPolicy(), "a/b/.github/pmguard.yml")
    nested = "severities: " + "[" * 5000 + "]" * 5000
    with pytest.raises(PolicyError, match="nests deeper than"):
        repository_policy(nested, IncidentPolicy(), "a/b/.github/pmguard.yml")
