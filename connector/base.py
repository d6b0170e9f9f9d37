"""What the service knows about trackers, independent of GitHub or Jira.

Connectors turn webhook payloads into `WebhookEvent`s and talk to a tracker's REST API
behind the `Tracker` protocol. Nothing here analyses text; nothing here touches the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

MENTION = re.compile(r"(?<![\w@/])@([A-Za-z0-9][\w-]*(?:\.[\w-]+)*)")

GITHUB = "github"
JIRA = "jira"

# What a webhook asks of the service.
CLOSED = "incident_closed"  # check the incident
REOPENED = "incident_reopened"  # nothing to check; the next close re-checks
POSTMORTEM_EDITED = "postmortem_edited"  # re-check every incident that links it
RECHECK = "recheck_requested"  # someone commented `/pmguard recheck`
INCIDENT_EDITED = "incident_edited"  # a closed incident's body or links changed


@dataclass(frozen=True)
class IncidentRef:
    """Where an issue lives: tracker, site (API base URL), project and key.

    GitHub: project "owner/repo", key "12". Jira: project "OPS", key "OPS-12".
    """

    tracker: str
    site: str
    project: str
    key: str

    @property
    def id(self) -> str:
        """Stable text id used in the store, in logs and as the per-incident lock name."""
        sep = "#" if self.tracker == GITHUB else ":"
        return f"{self.tracker}:{self.site.rstrip('/')}:{self.project}{sep}{self.key}"

    @property
    def display(self) -> str:
        return f"{self.project}#{self.key}" if self.tracker == GITHUB else self.key


@dataclass(frozen=True)
class Comment:
    id: str
    author: str
    body: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class Incident:
    ref: IncidentRef
    title: str
    body: str
    body_format: str  # markdown | jira | adf
    state: str  # open | closed
    url: str
    state_reason: str | None = None  # GitHub: completed | not_planned | duplicate
    labels: tuple[str, ...] = ()
    issue_type: str | None = None  # Jira issue type name
    severity: str | None = None  # from a label or a configured field
    author: str | None = None
    assignees: tuple[str, ...] = ()
    comments: tuple[Comment, ...] = ()
    closed_at: datetime | None = None
    # Postmortems the tracker itself links (Jira issue links, remote links, a URL field,
    # GitHub timeline cross-references); text references are found by the policy.
    linked: tuple[PostmortemRef, ...] = ()
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def roster(self) -> tuple[str, ...]:
        """People involved: author, assignees, commenters and @mentions in the body and
        comments (for person detection in the postmortem)."""
        people = [self.author or "", *self.assignees, *(c.author for c in self.comments)]
        for text in (self.body, *(c.body for c in self.comments)):
            people.extend(f"@{m}" for m in MENTION.findall(text or ""))
        return tuple(dict.fromkeys(p for p in people if p))


@dataclass(frozen=True)
class PostmortemRef:
    """A pointer to a postmortem: a tracker issue, a repository file, a Confluence page."""

    kind: str  # issue | file | confluence | url
    locator: str  # "owner/repo#12", "owner/repo:path/to/pm.md@ref", "OPS-7", page id, URL
    url: str = ""


@dataclass(frozen=True)
class ReadScope:
    """The places one incident's postmortems may be read from, decided by the policy
    (rules.incident_policy.read_scope). A connector given one refuses anything outside it
    before the body is used: a reference is text anyone can write into an incident, and
    the service's credentials reach more than the incident's author may read."""

    github: frozenset[str] = frozenset()  # "owner/repo", lower case
    jira: frozenset[str] = frozenset()  # project keys, upper case
    confluence: frozenset[str] = frozenset()  # space keys, upper case

    def allows_github(self, project: str) -> bool:
        return project.lower() in self.github

    def allows_jira(self, project: str) -> bool:
        return project.upper() in self.jira

    def allows_confluence(self, space: str) -> bool:
        return space.upper() in self.confluence


@dataclass(frozen=True)
class Postmortem:
    ref: PostmortemRef
    title: str
    text: str
    format: str  # markdown | jira | adf | text
    url: str
    updated_at: datetime | None = None
    # Where it was read from, for people: "repository acme/ops", "Jira project PIR",
    # "Confluence space ENG".
    source: str = ""


class MalformedPayload(ValueError):
    """A signed webhook body whose fields have the wrong shape; the message names the
    field ("issue.labels must be a list"). The sender's bug, answered with 400."""


@dataclass(frozen=True)
class WebhookEvent:
    """A delivery reduced to what the service must do about it."""

    kind: str  # CLOSED | REOPENED | POSTMORTEM_EDITED | RECHECK | INCIDENT_EDITED
    ref: IncidentRef  # the incident, or the postmortem issue for POSTMORTEM_EDITED
    actor: str = ""
    labels: tuple[str, ...] = ()
    issue_type: str | None = None
    state_reason: str | None = None
    installation_id: int | None = None  # GitHub App installation that sent it


class TrackerError(Exception):
    """A tracker call failed. `transient` errors are retried with backoff."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


OUTSIDE = "outside the allowed places"


class OutsideScope(TrackerError):
    """The postmortem lives where this incident's postmortems may not be read from.

    The message names only the reference as the incident wrote it, never anything read."""

    def __init__(self, what: str):
        super().__init__(f"{what} is {OUTSIDE}", transient=False)


class NotFound(TrackerError):
    def __init__(self, message: str):
        super().__init__(message, transient=False)


@runtime_checkable
class Tracker(Protocol):
    """The REST operations the worker needs from one tracker site."""

    name: str

    def fetch_incident(self, ref: IncidentRef) -> Incident: ...

    def fetch_postmortem(
        self, ref: PostmortemRef, *, site: str, scope: ReadScope | None = None
    ) -> Postmortem:
        """Read a postmortem; with `scope`, raise OutsideScope for one outside it."""
        ...

    def upsert_comment(self, ref: IncidentRef, marker: str, body: str) -> str:
        """Edit the comment containing `marker`, or create it; returns the comment id."""
        ...

    def set_verdict_labels(self, ref: IncidentRef, keep: str, remove: Iterable[str]) -> None:
        """Ensure `keep` is on the issue and none of `remove` are."""
        ...

    def reopen(self, ref: IncidentRef) -> None: ...

    def recently_closed(self, project: str, since: datetime) -> list[IncidentRef]: ...

    def can_write(self, ref: IncidentRef, user: str) -> bool:
        """Whether `user` may ask for a re-check (write access to the project)."""
        ...

    def incidents_linking(self, postmortem: IncidentRef) -> list[IncidentRef]:
        """Incidents whose body, comments or links point at this postmortem issue."""
        ...
