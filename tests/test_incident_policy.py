"""Which incidents need a postmortem, what counts as a link, and the comment's words."""

from __future__ import annotations

import time

import pytest

from check import comment
from connector.base import Comment, Incident, IncidentRef, PostmortemRef
from rules.incident_policy import (
    MAX_POLICY_CHARS,
    MAX_POSTMORTEM_REFS,
    IncidentPolicy,
    bounded_refs,
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
        # URLs on the incident's own GitHub become the issue or file they name, so a URL
        # and "#77" are one reference.
        ("**Postmortem:** https://github.com/acme/docs/blob/main/pm/2026-11.md",
         PostmortemRef("file", "acme/docs:pm/2026-11.md@main",
                       "https://github.com/acme/docs/blob/main/pm/2026-11.md")),
        ("PIR: https://github.com/acme/ops/issues/77",
         PostmortemRef("issue", "acme/ops#77", "https://github.com/acme/ops/issues/77")),
        ("Postmortem: https://docs.example.com/pm/7",
         PostmortemRef("url", "https://docs.example.com/pm/7", "https://docs.example.com/pm/7")),
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


def test_the_same_issue_written_many_ways_is_one_reference() -> None:
    lines = [
        "Postmortem: #4", "Postmortem: #04", "Postmortem: #004", "PIR: ACME/Ops#4",
        "Postmortem: acme/ops#0004", "Postmortem: https://github.com/acme/ops/issues/4",
        "Postmortem: https://github.com/Acme/OPS/issues/04/",
        "Postmortem: https://github.com/acme/ops/issues/4#issuecomment-9",
        "Postmortem: <https://github.com/acme/ops/issues/4?x=1>",
    ]
    assert postmortem_refs(incident("\n".join(lines * 25))) == [
        PostmortemRef("issue", "acme/ops#4")
    ]


def test_the_same_file_written_many_ways_is_one_reference() -> None:
    url = "https://github.com/acme/docs/blob/main/pm/db.md"
    forms = (url, f"{url}#L3", f"{url}?plain=1", url.replace("acme", "ACME"))
    body = "\n".join(f"Postmortem: {u}" for u in forms)
    assert [r.locator for r in postmortem_refs(incident(body))] == ["acme/docs:pm/db.md@main"]


def test_the_same_jira_issue_by_key_and_by_url_is_one_reference() -> None:
    ref = IncidentRef("jira", "https://acme.atlassian.net", "OPS", "OPS-1")
    inc = Incident(
        ref=ref, title="t", body="Postmortem: PIR-7\nPIR: https://acme.atlassian.net/browse/PIR-7",
        body_format="jira", state="closed", url="https://acme.atlassian.net/browse/OPS-1",
        linked=(PostmortemRef("issue", "PIR-7", "https://acme.atlassian.net/browse/PIR-7"),),
    )
    assert [r.locator for r in postmortem_refs(inc)] == ["PIR-7"]


def test_references_are_capped_and_the_rest_reported() -> None:
    body = "\n".join(f"Postmortem: #{n}" for n in range(1, 201))
    refs = postmortem_refs(incident(body))
    assert len(refs) == 200
    read, skipped = bounded_refs(refs)
    assert MAX_POSTMORTEM_REFS == 10
    assert [r.locator for r in read] == [f"acme/ops#{n}" for n in range(1, 11)]
    assert len(skipped) == 190


# ---- where postmortems may be read from ------------------------------------------------


def jira_incident(body: str = "", linked=()) -> Incident:
    return Incident(
        ref=IncidentRef("jira", "https://acme.atlassian.net", "OPS", "OPS-1"), title="t",
        body=body, body_format="jira", state="closed",
        url="https://acme.atlassian.net/browse/OPS-1", linked=linked,
    )


def refusal(ref: PostmortemRef, inc: Incident, policy: IncidentPolicy | None = None,
            watched=()):
    from rules.incident_policy import read_refusal, read_scope

    scope = read_scope(inc, policy or IncidentPolicy(), watched=watched)
    return read_refusal(ref, inc, scope)


def test_postmortem_sources_parse_and_validate() -> None:
    policy = policy_from_mapping(
        {"postmortem_sources": {"github": ["acme/postmortems"], "jira": ["PIR"],
                                "confluence": ["ENG", "~ana"]}},
        "policy",
    )
    assert policy.postmortem_sources.github == ("acme/postmortems",)
    assert policy.postmortem_sources.jira == ("PIR",)
    assert policy.postmortem_sources.confluence == ("ENG", "~ana")
    assert IncidentPolicy().postmortem_sources.github == ()
    for bad, message in [
        ({"github": "acme/pm"}, "maps github, jira and confluence"),
        ({"gitlab": ["a/b"]}, "maps github, jira and confluence"),
        ({"github": ["acme"]}, "'acme' is not owner/repo"),
        ({"github": ["../.."]}, "not owner/repo"),
        ({"jira": ["pir"]}, "not a Jira project key"),
        ({"confluence": ["EN G"]}, "not a Confluence space key"),
    ]:
        with pytest.raises(PolicyError, match=f"p.yml: .*{message}"):
            policy_from_mapping({"postmortem_sources": bad}, "p.yml")


def test_a_github_incident_reads_only_its_own_repository_by_default() -> None:
    own = PostmortemRef("issue", "acme/ops#12")
    other_issue = PostmortemRef("issue", "acme/secret#3")
    other_file = PostmortemRef("file", "acme/secret:docs/pm.md@main")
    assert refusal(own, incident()) is None
    assert refusal(PostmortemRef("issue", "ACME/OPS#12"), incident()) is None
    for ref in (other_issue, other_file):
        decided = refusal(ref, incident())
        assert decided is not None and decided.outside
        assert decided.reason == "outside the allowed places"


def test_the_policy_widens_and_watched_repositories_bound() -> None:
    policy = policy_from_mapping({"postmortem_sources": {"github": ["acme/postmortems"]}}, "p")
    ref = PostmortemRef("file", "Acme/Postmortems:2026/db.md")
    assert refusal(ref, incident(), policy) is None
    assert refusal(ref, incident(), policy, watched=("acme/ops", "acme/postmortems")) is None
    assert refusal(ref, incident(), policy, watched=("acme/ops",)).outside
    # The incident's own repository outside the watched list is not read either.
    assert refusal(PostmortemRef("issue", "acme/ops#1"), incident(), watched=("acme/x",)).outside


def test_unsafe_or_foreign_github_references_are_refused_with_a_reason() -> None:
    bad = refusal(PostmortemRef("issue", "../..#3"), incident())
    assert bad is not None and not bad.outside and "not a GitHub repository" in bad.reason
    foreign = refusal(PostmortemRef("url", "https://gitlab.com/a/b", "https://gitlab.com/a/b"),
                      incident())
    assert foreign is not None and not foreign.outside


def test_a_repository_config_may_narrow_but_never_widen_the_places() -> None:
    base = policy_from_mapping(
        {"postmortem_sources": {"github": ["acme/postmortems", "acme/handbook"]}}, "service"
    )
    widened = repository_policy(
        "postmortem_sources:\n  github: [acme/secret-infra, acme/postmortems]\n", base,
        "acme/ops/.github/pmguard.yml",
    )
    assert widened.postmortem_sources.github == ("acme/postmortems",)
    assert refusal(PostmortemRef("issue", "acme/secret-infra#1"), incident(), widened).outside
    narrowed = repository_policy("postmortem_sources: {github: []}\n", base, "r")
    assert narrowed.postmortem_sources.github == ()
    untouched = repository_policy("enforcement: reopen\n", base, "r")
    assert untouched.postmortem_sources == base.postmortem_sources


def test_a_jira_incident_reads_its_own_project_and_named_places_only() -> None:
    policy = policy_from_mapping(
        {"postmortem_sources": {"jira": ["PIR"], "confluence": ["ENG"]}}, "p"
    )
    inc = jira_incident()
    assert refusal(PostmortemRef("issue", "OPS-7"), inc) is None
    assert refusal(PostmortemRef("issue", "SEC-7"), inc).outside
    assert refusal(PostmortemRef("issue", "PIR-7"), inc).outside
    assert refusal(PostmortemRef("issue", "PIR-7"), inc, policy) is None
    # Pages: no space named -> refused without a request; a page id -> the connector checks.
    assert refusal(PostmortemRef("confluence", "123"), inc).outside
    assert refusal(PostmortemRef("confluence", "123"), inc, policy) is None
    sec = "https://acme.atlassian.net/wiki/spaces/SEC/pages/123/x"
    assert refusal(PostmortemRef("confluence", "123", sec), inc, policy).outside
    wiki = "https://acme.atlassian.net/wiki"
    for url, outside in [
        (f"{wiki}/spaces/SEC/pages/123/Title", True),
        (f"{wiki}/display/SEC/Title", True),
        (f"{wiki}/spaces/ENG/pages/123/Title", False),
        (f"{wiki}/pages/viewpage.action?pageId=123", False),
    ]:
        decided = refusal(PostmortemRef("url", url, url), inc, policy)
        assert (decided is not None and decided.outside) == outside, url
    assert refusal(PostmortemRef("url", f"{wiki}/pages/viewpage.action?pageId=1", ""), inc).outside


def test_the_comment_says_a_reference_is_outside_and_how_many_were_not_read() -> None:
    from check.verdict import MISSING, check

    refused = PostmortemRef("file", "acme/secret:docs/pm.md@main", "https://x/secret")
    verdict = check(incident(), [], IncidentPolicy(), refused=[refused], not_read=3)
    assert verdict.status == MISSING and verdict.refused == (refused,)
    body = comment.render(incident(), verdict, IncidentPolicy())
    assert ("- The linked postmortem `acme/secret:docs/pm.md@main` was not read: it is outside "
            "the allowed places") in body
    assert "read the first 10, and 3 more were not read" in body
    jira = comment.render(jira_incident(), check(jira_incident(), [], IncidentPolicy(),
                                                 refused=[PostmortemRef("issue", "SEC-1")]),
                          IncidentPolicy())
    assert "{{SEC-1}} was not read: it is outside the allowed places (this incident's own " \
           "project" in jira


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


def test_action_items_by_severity_overlays_only_the_knobs_it_names() -> None:
    policy = policy_from_mapping(
        {
            "action_items": {"headings": ["Homework"], "require_tracking": True},
            "action_items_by_severity": {
                "sev1": {"require_owner": True, "require_due": True},
                "SEV-3": {"min_items": 1, "require_tracking": False},
            },
        },
        "policy.yml",
    )
    sev1 = policy.actions_for(incident(severity="sev1"))
    assert (sev1.require_owner, sev1.require_due, sev1.require_tracking) == (True, True, True)
    assert sev1.headings == ("Homework",)
    sev3 = policy.actions_for(incident(labels=("incident", "sev3")))
    assert (sev3.require_owner, sev3.require_tracking) == (False, False)
    assert policy.actions_for(incident(severity="sev2")) == policy.actions
    assert policy.actions_for(incident()) == policy.actions
    with pytest.raises(PolicyError, match="action_items_by_severity.sev1: unknown key 'owner'"):
        policy_from_mapping({"action_items_by_severity": {"sev1": {"owner": True}}}, "p.yml")
    with pytest.raises(PolicyError, match="maps severities"):
        policy_from_mapping({"action_items_by_severity": ["sev1"]}, "p.yml")


def test_a_sev1_postmortem_is_held_to_the_sev1_knobs() -> None:
    from check.verdict import check
    from connector.base import Postmortem

    pm = Postmortem(PostmortemRef("issue", "acme/ops#12"), "PM", (
        "# Outage\n\nThe cache expired early.\n\n## Action items\n\n"
        "- Add a TTL alert (OPS-31)\n- Update the cache runbook (OPS-32)\n"
    ), "markdown", "https://github.com/acme/ops/issues/12")
    policy = policy_from_mapping(
        {"review_at": "info", "action_items_by_severity": {"sev1": {"require_owner": True}}},
        "p.yml",
    )
    rules = {f.rule for f in check(incident(severity="sev1"), [pm], policy,
                                   model="blank").open_findings}
    assert "actions.missing-owner" in rules
    calm = {f.rule for f in check(incident(severity="sev3"), [pm], policy,
                                  model="blank").open_findings}
    assert "actions.missing-owner" not in calm
