"""Which closed incidents need a postmortem, what counts as a link to one, and what the
service does about the verdict. Pure: data in, decisions out.

The service-wide policy comes from the `policy:` section of the settings; a repository may
override it with `.github/pmguard.yml`, the way Probot apps and policy-bot read theirs.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import yaml

from connector import locators
from connector.base import GITHUB, OUTSIDE, Incident, PostmortemRef, ReadScope
from rules.policy import ActionPolicy, PolicyError
from settings.safe_yaml import YamlRefused, load_yaml

MAX_POLICY_CHARS = 64 * 1024  # a repository policy is a few lines
ENFORCEMENTS = ("comment", "reopen")
# How many distinct postmortem references one check reads; the rest are reported as not
# read. It bounds the API calls and stored analyses an incident's text can cause.
MAX_POSTMORTEM_REFS = 10
SEVERITY_LABEL = re.compile(r"^(?:sev|severity|p)[\s:_-]*([0-9])$", re.IGNORECASE)
# "Postmortem: #12", "Post-mortem - org/repo#12", "PIR: https://…"
LINK_LINE = re.compile(
    r"^\W*(?:post[\s-]?mortem|post[\s-]?incident[\s-]review|pir|incident\s+review|retro(?:spective)?)"
    r"\W*?[:\-–—][\s*_]*(?P<ref>[^\s*_]\S*)",
    re.IGNORECASE | re.MULTILINE,
)
ISSUE_REF = re.compile(r"^(?:(?P<repo>[\w.-]+/[\w.-]+))?#(?P<number>\d+)$")
GITHUB_URL = re.compile(
    r"^https?://(?P<host>[^/]+)/(?P<repo>[\w.-]+/[\w.-]+)/(?P<kind>issues|blob)/(?P<rest>\S+)$"
)


@dataclass(frozen=True)
class VerdictLabels:
    missing: str = "postmortem:missing"
    needs_review: str = "postmortem:needs-review"
    ok: str = "postmortem:ok"

    def for_verdict(self, verdict: str) -> str:
        # "unchecked" (too large or too slow to analyse) asks for a person, as a review does.
        return {
            "missing": self.missing,
            "needs-review": self.needs_review,
            "unchecked": self.needs_review,
        }.get(verdict, self.ok)

    @property
    def all(self) -> tuple[str, str, str]:
        return (self.missing, self.needs_review, self.ok)


@dataclass(frozen=True)
class PostmortemSources:
    """Places, besides the incident's own repository or project, that postmortems may be
    read from. Empty by default: only the incident's own place. Confluence spaces are
    never an incident's own place, so pages are read only from spaces named here."""

    github: tuple[str, ...] = ()  # "owner/repo"
    jira: tuple[str, ...] = ()  # project keys
    confluence: tuple[str, ...] = ()  # space keys

    def within(self, outer: PostmortemSources) -> PostmortemSources:
        """Only the places also in `outer`: a repository's config may narrow the service
        policy's places, never add one (it could otherwise name a repository it does not
        own and have the service read it with its own credentials)."""
        github = {p.lower() for p in outer.github}
        jira = {p.upper() for p in outer.jira}
        spaces = {p.upper() for p in outer.confluence}
        return PostmortemSources(
            github=tuple(p for p in self.github if p.lower() in github),
            jira=tuple(p for p in self.jira if p.upper() in jira),
            confluence=tuple(p for p in self.confluence if p.upper() in spaces),
        )


@dataclass(frozen=True)
class IncidentPolicy:
    enforcement: str = "comment"
    labels: VerdictLabels = field(default_factory=VerdictLabels)
    # Empty: every closed incident needs a postmortem. Otherwise only these ("sev1", "sev2").
    severities: tuple[str, ...] = ()
    # Findings at or above this severity make the verdict "needs-review".
    review_at: str = "warning"
    max_listed: int = 5
    recheck_command: str = "/pmguard recheck"
    actions: ActionPolicy = field(default_factory=ActionPolicy)
    # Per incident severity, the action-item knobs that differ from `actions` ("sev1 needs
    # owners and due dates, sev3 only an item"): (normalised severity, policy) pairs.
    actions_by_severity: tuple[tuple[str, ActionPolicy], ...] = ()
    postmortem_sources: PostmortemSources = field(default_factory=PostmortemSources)

    def actions_for(self, incident: Incident) -> ActionPolicy:
        """The action-item policy for this incident's severity (`actions` when none is
        set for it, or the incident has no severity)."""
        severity = incident.severity or severity_from_labels(incident.labels)
        if severity is None:
            return self.actions
        wanted = _norm_sev(severity)
        return next((p for sev, p in self.actions_by_severity if sev == wanted), self.actions)

    def needs_postmortem(self, incident: Incident) -> bool:
        if not self.severities:
            return True
        severity = incident.severity or severity_from_labels(incident.labels)
        return severity is not None and _norm_sev(severity) in {
            _norm_sev(s) for s in self.severities
        }


def _norm_sev(text: str) -> str:
    m = SEVERITY_LABEL.match(text.strip())
    return f"sev{m.group(1)}" if m else text.strip().lower()


def severity_from_labels(labels: tuple[str, ...]) -> str | None:
    for label in labels:
        m = SEVERITY_LABEL.match(label.strip())
        if m:
            return f"sev{m.group(1)}"
    return None


POLICY_KEYS = {
    "enforcement", "labels", "severities", "review_at", "max_listed", "action_items",
    "action_items_by_severity", "postmortem_sources",
}
_SOURCE_NAME = {
    "jira": re.compile(r"^[A-Z][A-Z0-9_]+$"),
    # Global spaces are upper-case keys; personal spaces are "~name" or "~accountid".
    "confluence": re.compile(r"^~?[A-Za-z0-9_.:-]+$"),
}


def policy_from_mapping(
    data: dict, source: str, base: IncidentPolicy | None = None
) -> IncidentPolicy:
    """Build (or overlay onto `base`) a policy from YAML data; errors name source and key."""
    policy = base or IncidentPolicy()
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping")
    unknown = sorted(set(data) - POLICY_KEYS)
    if unknown:
        raise PolicyError(f"{source}: unknown key '{unknown[0]}'")
    changes: dict[str, Any] = {}
    if "enforcement" in data:
        if data["enforcement"] not in ENFORCEMENTS:
            raise PolicyError(f"{source}: 'enforcement' must be one of {', '.join(ENFORCEMENTS)}")
        changes["enforcement"] = data["enforcement"]
    if "labels" in data:
        labels = data["labels"]
        known = {f.name.replace("_", "-") for f in fields(VerdictLabels)}
        if not isinstance(labels, dict) or set(labels) - known:
            raise PolicyError(f"{source}: 'labels' maps {', '.join(sorted(known))} to names")
        changes["labels"] = replace(
            policy.labels, **{k.replace("-", "_"): str(v) for k, v in labels.items()}
        )
    if "severities" in data:
        sev = data["severities"]
        if not isinstance(sev, list):
            raise PolicyError(f"{source}: 'severities' must be a list like [sev1, sev2]")
        changes["severities"] = tuple(str(s) for s in sev)
    if "review_at" in data:
        if data["review_at"] not in ("info", "warning", "error"):
            raise PolicyError(f"{source}: 'review_at' must be info, warning or error")
        changes["review_at"] = data["review_at"]
    if "max_listed" in data:
        value = data["max_listed"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PolicyError(f"{source}: 'max_listed' must be a positive integer")
        changes["max_listed"] = value
    if "action_items" in data:
        changes["actions"] = ActionPolicy.from_mapping(data["action_items"], source)
    if "action_items_by_severity" in data:
        base_actions = changes.get("actions", policy.actions)
        changes["actions_by_severity"] = _by_severity(
            data["action_items_by_severity"], base_actions, source
        )
    if "postmortem_sources" in data:
        changes["postmortem_sources"] = _sources(data["postmortem_sources"], source)
    return replace(policy, **changes)


def _by_severity(
    data: object, base: ActionPolicy, source: str
) -> tuple[tuple[str, ActionPolicy], ...]:
    # Each severity overlays only the knobs it names onto `action_items`, so "sev1:
    # {require_owner: true}" keeps the team's headings and lesson-home words.
    shape = "'action_items_by_severity' maps severities (sev1, sev2…) to action-item knobs"
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: {shape}")
    out: list[tuple[str, ActionPolicy]] = []
    for severity, knobs in data.items():
        if not isinstance(severity, str) or not isinstance(knobs, dict):
            raise PolicyError(f"{source}: {shape}")
        parsed = ActionPolicy.from_mapping(knobs, f"{source}: action_items_by_severity.{severity}")
        out.append((_norm_sev(severity), replace(base, **{k: getattr(parsed, k) for k in knobs})))
    return tuple(out)


def _sources(data: object, source: str) -> PostmortemSources:
    shape = "'postmortem_sources' maps github, jira and confluence to lists"
    if data is None:
        return PostmortemSources()
    if not isinstance(data, dict) or set(data) - {"github", "jira", "confluence"}:
        raise PolicyError(f"{source}: {shape}")
    out: dict[str, tuple[str, ...]] = {}
    for kind, names in data.items():
        if names is None:
            names = []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise PolicyError(f"{source}: {shape}")
        for name in names:
            if kind == "github":
                try:
                    locators.github_project(name)
                except locators.BadReference:
                    raise PolicyError(
                        f"{source}: 'postmortem_sources.github' entry {name!r} is not owner/repo"
                    ) from None
            elif not _SOURCE_NAME[kind].match(name):
                what = "a Jira project key" if kind == "jira" else "a Confluence space key"
                raise PolicyError(
                    f"{source}: 'postmortem_sources.{kind}' entry {name!r} is not {what}"
                )
        out[kind] = tuple(dict.fromkeys(names))
    return PostmortemSources(**out)


def repository_policy(text: str | None, base: IncidentPolicy, source: str) -> IncidentPolicy:
    """The service policy with a repository's `.github/pmguard.yml` laid over it.

    The text is anyone's with write access to a repository the App is installed on, so it
    is read without aliases and under a size cap; a refusal is a PolicyError, which the
    worker logs before it goes on with the service policy."""
    if not text:
        return base
    if len(text) > MAX_POLICY_CHARS:
        raise PolicyError(f"{source}: over {MAX_POLICY_CHARS} characters; not read")
    try:
        data = load_yaml(text, source) or {}
    except YamlRefused as exc:
        raise PolicyError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: invalid YAML ({exc.__class__.__name__})") from None
    policy = policy_from_mapping(data, source, base)
    # Only the service policy widens where postmortems are read from; a repository narrows.
    return replace(policy, postmortem_sources=policy.postmortem_sources.within(
        base.postmortem_sources
    ))


def postmortem_refs(incident: Incident, *, bot_marker: str = "") -> list[PostmortemRef]:
    """Postmortems the incident links: tracker links first, then "Postmortem: …" lines in
    its body and comments (the service's own comment excepted).

    Each reference is normalised (`normalise_ref`) and duplicates go: "#4", "#04",
    "ACME/Ops#4" and the issue's URL are one reference, kept as first written.
    """
    refs = list(incident.linked)
    comments = [c.body for c in incident.comments if not (bot_marker and bot_marker in c.body)]
    for text in [incident.body, *comments]:
        for match in LINK_LINE.finditer(text or ""):
            ref = _parse_ref(match.group("ref").strip("<>()[]`*_.,;"), incident)
            if ref is not None:
                refs.append(ref)
    seen: set[tuple] = set()
    out = []
    for ref in refs:
        ref = normalise_ref(ref, incident)
        key = _identity(ref)
        if key not in seen:
            seen.add(key)
            out.append(ref)
    return out


def bounded_refs(
    refs: list[PostmortemRef], limit: int = MAX_POSTMORTEM_REFS
) -> tuple[list[PostmortemRef], list[PostmortemRef]]:
    """(the first `limit` references, to read; the rest, reported as not read)."""
    return refs[:limit], refs[limit:]


def read_scope(
    incident: Incident, policy: IncidentPolicy, *, watched: Collection[str] = ()
) -> ReadScope:
    """Where this incident's postmortems may be read from: its own repository or project,
    and the places the policy names. On GitHub, `watched` (github.repositories, when set)
    bounds it too: a repository the service does not watch is never read."""
    sources = policy.postmortem_sources
    if incident.ref.tracker == GITHUB:
        github = {incident.ref.project.lower(), *(p.lower() for p in sources.github)}
        if watched:
            github &= {w.lower() for w in watched}
        return ReadScope(github=frozenset(github))
    return ReadScope(
        jira=frozenset({incident.ref.project.upper(), *(p.upper() for p in sources.jira)}),
        confluence=frozenset(p.upper() for p in sources.confluence),
    )


@dataclass(frozen=True)
class Refusal:
    reason: str
    outside: bool  # outside the allowed places (else: not a readable reference)


def read_refusal(ref: PostmortemRef, incident: Incident, scope: ReadScope) -> Refusal | None:
    """Why a (normalised) reference must not be read, or None to read it.

    Decided from the reference alone, so a refused one costs no request. Where the place is
    only known from the answer (a Confluence page by id), None lets the connector read the
    page's metadata and refuse it there before its body is used.
    """
    try:
        if incident.ref.tracker == GITHUB:
            if ref.kind in ("issue", "file"):
                target = (
                    locators.github_issue(ref.locator)
                    if ref.kind == "issue"
                    else locators.github_file(ref.locator)
                )
                if not scope.allows_github(target.project):
                    return Refusal(OUTSIDE, outside=True)
            elif ref.kind == "url":
                # Not normalised into an issue or file: an unsafe one (BadReference, below),
                # or another site, a pull request, a tree.
                target = locators.github_url(ref.url or ref.locator, _github_hosts(incident))
                if target is None:
                    return Refusal("not an issue or file on this GitHub", outside=False)
                if not scope.allows_github(target.project):
                    return Refusal(OUTSIDE, outside=True)
            return None
        if ref.kind == "issue":
            if not scope.allows_jira(locators.jira_project(ref.locator)):
                return Refusal(OUTSIDE, outside=True)
        elif ref.kind == "confluence":
            locators.confluence_page_id(ref.locator)
            space = _confluence_space(ref.url) if ref.url else None
            if not scope.confluence or (space and not scope.allows_confluence(space)):
                return Refusal(OUTSIDE, outside=True)
        elif ref.kind == "url":
            space = _confluence_space(ref.url or ref.locator)
            if space is not None and not scope.confluence:
                return Refusal(OUTSIDE, outside=True)
            if space and not scope.allows_confluence(space):
                return Refusal(OUTSIDE, outside=True)
    except locators.BadReference as exc:
        return Refusal(str(exc), outside=False)
    return None


_SPACE_IN_URL = re.compile(r"/(?:spaces|display)/([^/?#]+)")


def _confluence_space(url: str) -> str | None:
    """The space a Confluence-looking URL names ("" when it names none), None when the URL
    does not look like a Confluence page (the connector says why it cannot read it)."""
    parts = urlsplit(url)
    if m := _SPACE_IN_URL.search(parts.path):
        return unquote_plus(m.group(1))
    if parts.path.endswith("/viewpage.action") or "pageId=" in parts.query:
        return ""
    return None


def normalise_ref(ref: PostmortemRef, incident: Incident) -> PostmortemRef:
    """The canonical form of a reference, as far as it can be known without a request.

    GitHub: issue numbers without leading zeros; an issue or blob URL on the incident's own
    GitHub becomes the issue or file ref it names (anchor, query and trailing slash
    dropped). Jira: a /browse/ URL on the incident's site becomes the issue key. A reference
    that does not parse is kept as written; the read decision reports why it is not read.
    """
    url = ref.url or ref.locator
    try:
        if incident.ref.tracker == GITHUB:
            if ref.kind == "url":
                target = locators.github_url(url, _github_hosts(incident))
                if target is not None:
                    kind = "issue" if isinstance(target, locators.GitHubIssue) else "file"
                    return PostmortemRef(kind, target.locator, ref.url)
            elif ref.kind == "issue":
                return replace(ref, locator=locators.github_issue(ref.locator).locator)
            elif ref.kind == "file":
                return replace(ref, locator=locators.github_file(ref.locator).locator)
        elif ref.kind == "url":
            browse = re.match(
                re.escape(incident.ref.site.rstrip("/")) + r"/browse/([^/?#]+)/?(?:[?#].*)?$", url
            )
            if browse:
                return PostmortemRef("issue", _jira_key(browse.group(1)), ref.url)
        elif ref.kind == "issue":
            return replace(ref, locator=_jira_key(ref.locator))
    except locators.BadReference:
        pass
    return ref


def _jira_key(text: str) -> str:
    project = locators.jira_project(text)
    return f"{project}-{int(text.rsplit('-', 1)[1])}"


def _github_hosts(incident: Incident) -> set[str]:
    hosts = locators.github_web_hosts(incident.ref.site)
    if incident.url:
        hosts.add(urlsplit(incident.url).netloc.lower())
    return hosts


def _identity(ref: PostmortemRef) -> tuple:
    """What makes two normalised references the same postmortem (GitHub names ignore case)."""
    try:
        if ref.kind == "issue" and "/" in ref.locator:
            issue = locators.github_issue(ref.locator)
            return ("issue", issue.project.lower(), issue.number)
        if ref.kind == "file":
            file = locators.github_file(ref.locator)
            return ("file", file.project.lower(), file.path, file.ref)
    except locators.BadReference:
        pass
    if ref.kind == "url":
        parts = urlsplit(ref.url or ref.locator)
        return ("url", parts._replace(fragment="", path=parts.path.rstrip("/")).geturl())
    return (ref.kind, ref.locator)


def _parse_ref(text: str, incident: Incident) -> PostmortemRef | None:
    if incident.ref.tracker == GITHUB:
        m = ISSUE_REF.match(text)
        if m:
            repo = m.group("repo") or incident.ref.project
            return PostmortemRef("issue", f"{repo}#{m.group('number')}")
    if text.startswith(("http://", "https://")):
        return PostmortemRef("url", text, text)
    if incident.ref.tracker != GITHUB and re.match(r"^[A-Z][A-Z0-9]+-\d+$", text):
        return PostmortemRef("issue", text)
    return None
