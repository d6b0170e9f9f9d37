"""Jira: webhook payloads -> WebhookEvents, and the Tracker protocol over the `jira` library.

`parse_event` is pure (no I/O) and reads both Cloud and Data Center/Server deliveries.
`JiraTracker` makes every Jira call through `jira.JIRA` (REST v2) with the client's own retries
off: the worker owns retries and backoff, and the client would otherwise sleep tens of seconds
on a 429. Confluence pages, which the library does not cover, go through connector/confluence.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from jira import JIRA, JIRAError

from connector import locators
from connector.base import (
    CLOSED,
    INCIDENT_EDITED,
    POSTMORTEM_EDITED,
    RECHECK,
    REOPENED,
    Comment,
    Incident,
    IncidentRef,
    MalformedPayload,
    NotFound,
    OutsideScope,
    Postmortem,
    PostmortemRef,
    ReadScope,
    TrackerError,
    WebhookEvent,
)
from connector.base import JIRA as TRACKER
from connector.confluence import (
    ConfluenceClient,
    PageTarget,
    http_error,
    page_target,
    parse_time,
)

POSTMORTEM_ISSUE_TYPES = ("Postmortem", "Post-incident review")

# A line of its own, as on GitHub; a mention inside a sentence or {{monospace}} does not count.
# Bodies typed in Jira's editor end lines with CRLF, hence the \r.
_RECHECK = re.compile(r"^[ \t]*/pmguard[ \t]+recheck[ \t\r]*$", re.IGNORECASE | re.MULTILINE)
# Default done-status names: the only hint of a reopen when a workflow sets no resolution.
_DONE_STATUS_NAMES = {"done", "closed", "resolved"}
# Changelog fields that change what the check reads. Jira records issue-link changes as "Link"
# and remote-link changes as "RemoteIssueLink".
_CONTENT_FIELDS = {"description", "link", "issuelinks", "remoteissuelink"}
_SAYS_POSTMORTEM = re.compile(
    r"post[\s-]?mortem|post[\s-]?incident|incident\s+review|retrospective", re.IGNORECASE
)
_URL = re.compile(r"https?://[^\s|\]\[<>\"']+")
_JQL_TIME = "%Y/%m/%d %H:%M"


# ---- webhooks ---------------------------------------------------------------------------


def parse_event(
    payload: dict,
    *,
    site: str,
    bot_account: str | None = None,
    done_categories: Iterable[str] = ("done",),
    postmortem_issue_types: Iterable[str] = POSTMORTEM_ISSUE_TYPES,
) -> WebhookEvent | None:
    """Reduce a Jira delivery to what the service must do, or None when nothing.

    `site` is the configured Jira base URL (the ref's site), not the host in the payload.
    An edit of an issue whose type is a postmortem type is POSTMORTEM_EDITED (any state).
    """
    if not isinstance(payload, dict):
        return None
    _check_shapes(payload)
    ctx = _Context(
        site=site.rstrip("/"),
        bot_account=bot_account or "",
        done={c.lower() for c in done_categories},
        pm_types={t.lower() for t in postmortem_issue_types},
    )
    event = payload.get("webhookEvent") or ""
    if event == "jira:issue_updated":
        return _issue_updated(payload, ctx)
    if event in ("comment_created", "comment_updated"):
        return _commented(payload, ctx, edited=event == "comment_updated")
    if event in ("issuelink_created", "issuelink_deleted"):
        link = _dict(payload.get("issueLink"))
        source = link.get("sourceIssueId")
        if source is None:
            return None
        # Only ids arrive; Jira takes an id wherever a key goes, and fetch_incident returns
        # the canonical ref (project and key) for it.
        return WebhookEvent(INCIDENT_EDITED, IncidentRef(TRACKER, ctx.site, "", str(source)))
    return None


WEBHOOK_EVENTS = (
    "jira:issue_updated", "comment_created", "comment_updated", "issuelink_created",
    "issuelink_deleted",
)  # the events parse_event reads

# (path, types, what) of the fields parse_event reads: present with another type, the
# delivery is malformed. Absent (or null) is fine: such a delivery is just irrelevant.
_SHAPES: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("webhookEvent", str, "a string"),
    ("issue_event_type_name", str, "a string"),
    ("issue", dict, "an object"),
    ("issue.key", (str, int), "a string"),
    ("issue.fields", dict, "an object"),
    ("issue.fields.labels", list, "a list"),
    ("changelog", dict, "an object"),
    ("changelog.items", list, "a list"),
    ("comment", dict, "an object"),
    ("comment.body", (str, dict), "a string or an ADF document"),
    ("issueLink", dict, "an object"),
    ("user", dict, "an object"),
)


def _check_shapes(payload: dict) -> None:
    """MalformedPayload naming the first field parse_event reads that has the wrong type."""
    for path, types, what in _SHAPES:
        value: object = payload
        for name in path.split("."):
            value = value.get(name) if isinstance(value, dict) else None
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            raise MalformedPayload(f"{path} must be {what}")
    items = _dict(payload.get("changelog")).get("items") or []
    if not all(isinstance(item, dict) for item in items):
        raise MalformedPayload("changelog.items must be a list of objects")
    _check_adf(_dict(payload.get("comment")).get("body"))


def _check_adf(body: object) -> None:
    # Walked without recursion; the web layer has already bounded the nesting.
    stack = [body] if isinstance(body, dict) else []
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            raise MalformedPayload("comment.body: every ADF node must be an object")
        content = node.get("content")
        if content is not None and not isinstance(content, list):
            raise MalformedPayload("comment.body: an ADF node's content must be a list")
        if node.get("text") is not None and not isinstance(node.get("text"), str):
            raise MalformedPayload("comment.body: an ADF node's text must be a string")
        stack.extend(content or ())


@dataclass(frozen=True)
class _Context:
    site: str
    bot_account: str
    done: set[str]
    pm_types: set[str]


def _issue_updated(payload: dict, ctx: _Context) -> WebhookEvent | None:
    issue = _dict(payload.get("issue"))
    fields = _dict(issue.get("fields"))
    if not issue.get("key"):
        return None
    items = _dict(payload.get("changelog")).get("items")
    items = items if isinstance(items, list) else []
    changed = {_item_field(i): i for i in items if isinstance(i, dict)}
    done = _category(fields) in ctx.done
    status, resolution = changed.get("status"), changed.get("resolution")
    event = _event(issue, ctx, _user_id(payload.get("user")))

    # "Closed" comes from the changelog plus the issue's state, never from the event type
    # name: Cloud simplified workflows send issue_generic and old Server versions send none.
    if (status and done) or (resolution and _to(resolution)):
        return event(CLOSED)
    if resolution and _from(resolution) and not _to(resolution):
        return event(REOPENED)
    if payload.get("issue_event_type_name") == "issue_reopened":
        return event(REOPENED)
    if status and not done and str(status.get("fromString") or "").lower() in _DONE_STATUS_NAMES:
        return event(REOPENED)
    if changed.keys() & (_CONTENT_FIELDS | {"summary"}):
        if _type_name(fields).lower() in ctx.pm_types:
            return event(POSTMORTEM_EDITED)
        if done and changed.keys() & _CONTENT_FIELDS:
            return event(INCIDENT_EDITED)
    if isinstance(payload.get("comment"), dict):
        # Server sends comments as jira:issue_updated (issue_commented) too.
        edited = payload.get("issue_event_type_name") == "issue_comment_edited"
        return _commented(payload, ctx, edited=edited)
    return None


def _commented(payload: dict, ctx: _Context, *, edited: bool) -> WebhookEvent | None:
    comment = _dict(payload.get("comment"))
    author = (comment.get("updateAuthor") if edited else None) or comment.get("author")
    if ctx.bot_account and ctx.bot_account in _user_ids(author):
        return None
    issue = _dict(payload.get("issue"))
    if not issue.get("key"):
        # Server's comment_created carries no issue; its id is in the comment's self URL.
        m = re.search(r"/issue/(\d+)/comment/", str(comment.get("self") or ""))
        issue = {"key": m.group(1)} if m else {}
    if not issue.get("key"):
        return None
    event = _event(issue, ctx, _user_id(author))
    if _RECHECK.search(_plain(comment.get("body"))):
        return event(RECHECK)
    if _category(_dict(issue.get("fields"))) in ctx.done:
        # A comment can carry a "Postmortem: …" line, so it may change what is linked.
        return event(INCIDENT_EDITED)
    return None


def _event(issue: dict, ctx: _Context, actor: str):
    fields = _dict(issue.get("fields"))
    key = str(issue["key"])
    project = str(_dict(fields.get("project")).get("key") or _project_of(key))
    ref = IncidentRef(TRACKER, ctx.site, project, key)
    labels = fields.get("labels") if isinstance(fields.get("labels"), list) else []
    labels = tuple(x for x in labels if isinstance(x, str))
    issue_type = _type_name(fields) or None

    def make(kind: str) -> WebhookEvent:
        return WebhookEvent(kind, ref, actor=actor, labels=labels, issue_type=issue_type)

    return make


def _dict(value: object) -> dict:
    """Webhook bodies come from outside: a field of the wrong type reads as empty."""
    return value if isinstance(value, dict) else {}


def _item_field(item: dict) -> str:
    # Server items have no fieldId; `field` holds the same name ("status", "resolution").
    return str(item.get("fieldId") or item.get("field") or "").lower()


def _to(item: dict) -> bool:
    return item.get("to") is not None or item.get("toString") is not None


def _from(item: dict) -> bool:
    return item.get("from") is not None or item.get("fromString") is not None


def _category(fields: dict) -> str:
    status = _dict(fields.get("status"))
    return str(_dict(status.get("statusCategory")).get("key") or "").lower()


def _type_name(fields: dict) -> str:
    return str(_dict(fields.get("issuetype")).get("name") or "")


def _user_ids(user: dict | None) -> tuple[str, ...]:
    """Every way a payload names a user: Cloud accountId; Server name and key."""
    if not isinstance(user, dict):
        return ()
    return tuple(str(user[k]) for k in ("accountId", "name", "key") if user.get(k))


def _user_id(user: dict | None) -> str:
    ids = _user_ids(user)
    return ids[0] if ids else ""


def _display(user: dict | None) -> str:
    if not isinstance(user, dict):
        return ""
    return str(user.get("displayName") or _user_id(user))


def _project_of(key: str) -> str:
    return key.rsplit("-", 1)[0] if "-" in key else ""


def _plain(body: object) -> str:
    """A comment body as text: v2 sends a string; ADF (v3) is flattened to its text nodes."""
    if isinstance(body, str):
        return body
    if isinstance(body, dict):
        if body.get("type") == "text":
            return str(body.get("text") or "")
        inner = "".join(_plain(c) for c in body.get("content") or [])
        return inner + ("\n" if body.get("type") in ("paragraph", "heading") else "")
    return ""


# ---- REST -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JiraIncident(Incident):
    """An Incident whose roster also holds Jira's ids and display names.

    Text names people by display name ("Alice Adams") and mentions them by id
    ([~accountid:…], [~alice]); `extra["people"]` carries both for the reporter,
    assignee and commenters, which the base roster (author, assignees, commenters) cannot.
    """

    @property
    def roster(self) -> tuple[str, ...]:
        people = [*super().roster, *self.extra.get("people", ())]
        return tuple(dict.fromkeys(p for p in people if p))


class JiraTracker:
    """The Tracker protocol for one Jira site (Cloud: email + API token; DC: a PAT)."""

    name = TRACKER

    def __init__(
        self,
        site: str,
        *,
        email: str | None = None,
        token: str | None = None,
        pat: str | None = None,
        timeout: float = 15,
        postmortem_issue_types: Iterable[str] = POSTMORTEM_ISSUE_TYPES,
        link_types: tuple[str, ...] = (),
        url_field: str | None = None,
        severity_field: str | None = None,
        reopen_transition: str = "Reopen",
        confluence_url: str | None = None,
        bot_account: str | None = None,
        done_categories: Iterable[str] = ("done",),
        page_size: int = 100,
    ) -> None:
        if not pat and not (email and token):
            raise ValueError("Jira needs jira.email + jira.token (Cloud) or jira.pat (DC)")
        self.site = site.rstrip("/")
        self.timeout = timeout
        self.pm_types = {t.lower() for t in postmortem_issue_types}
        self.link_types = {t.lower() for t in link_types}
        self.url_field = url_field or None
        self.severity_field = severity_field or None
        self.reopen_transition = reopen_transition
        self.confluence_url = (confluence_url or f"{self.site}/wiki").rstrip("/")
        self.bot_account = bot_account or None
        self.done = {c.lower() for c in done_categories}
        self.page_size = page_size
        self._email, self._token, self._pat = email, token, pat
        self._lock = threading.Lock()
        self._jira: JIRA | None = None
        self._me: dict | None = None
        self._field_ids: dict[str, str] | None = None
        self.confluence = ConfluenceClient(
            self.confluence_url, email=email, token=token, pat=pat, timeout=timeout
        )

    # ---- plumbing

    def _client(self) -> JIRA:
        # Built on first use: construction calls serverInfo, which must not happen at import
        # or app start, and a failure must surface as a TrackerError the worker can retry.
        with self._lock:
            if self._jira is None:
                auth: dict = (
                    {"token_auth": self._pat}
                    if self._pat
                    else {"basic_auth": (self._email, self._token)}
                )
                with self._errors("Jira GET serverInfo"):
                    self._jira = JIRA(server=self.site, max_retries=0, timeout=self.timeout, **auth)
            return self._jira

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Library and transport failures -> TrackerError. `from None` matters: a JIRAError's
        str() includes the request headers, Authorization among them."""
        try:
            yield
        except TrackerError:
            raise
        except JIRAError as exc:
            detail = " ".join(str(exc.text or "").split())[:300]
            if exc.status_code is None:
                raise TrackerError(f"{what}: {detail}", transient=False) from None
            headers = exc.response.headers if exc.response is not None else None
            raise http_error(exc.status_code, what, detail, headers) from None
        except requests.Timeout:
            raise TrackerError(f"{what}: timed out", transient=True) from None
        except requests.ConnectionError:
            raise TrackerError(f"{what}: connection failed", transient=True) from None
        except requests.RequestException as exc:
            raise TrackerError(f"{what}: {type(exc).__name__}", transient=False) from None
        except ValueError:
            # A 2xx answer that is not JSON (a login page from a proxy, say).
            raise TrackerError(f"{what}: response is not JSON", transient=False) from None

    def _issue_raw(self, key: str, fields: str | None = None):
        with self._errors(f"Jira GET issue {key}"):
            return self._client().issue(key, fields=fields)

    def _browse(self, key: str) -> str:
        return f"{self.site}/browse/{key}"

    def _myself(self) -> dict:
        if self._me is None:
            with self._errors("Jira GET myself"):
                self._me = self._client().myself()
        return self._me

    def _is_cloud(self) -> bool:
        return self._client().deploymentType == "Cloud"

    # ---- reading

    def fetch_incident(self, ref: IncidentRef) -> Incident:
        issue = self._issue_raw(ref.key)
        raw = issue.raw
        fields = raw.get("fields") or {}
        key = str(raw.get("key") or ref.key)
        project = (fields.get("project") or {}).get("key") or _project_of(key)
        total = (fields.get("comment") or {}).get("total")
        comments = self._comments(key, total if isinstance(total, int) else None)
        with self._errors(f"Jira GET remotelink {key}"):
            remote = [r.raw for r in self._client().remote_links(key)]
        body, body_format = _description(fields.get("description"))
        done = _category(fields) in self.done
        reporter, assignee = fields.get("reporter"), fields.get("assignee")
        people = [*_user_ids(reporter), _display(reporter), *_user_ids(assignee)]
        for c in comments:
            people += [*_user_ids(c.raw.get("author")), _display(c.raw.get("author"))]
        return JiraIncident(
            ref=IncidentRef(TRACKER, self.site, project, key),
            title=str(fields.get("summary") or ""),
            body=body,
            body_format=body_format,
            state="closed" if done else "open",
            url=self._browse(key),
            state_reason=((fields.get("resolution") or {}).get("name") if done else None),
            labels=tuple(fields.get("labels") or ()),
            issue_type=_type_name(fields) or None,
            severity=self._severity(fields),
            author=_user_id(reporter) or None,
            assignees=(_display(assignee),) if assignee else (),
            comments=tuple(
                Comment(
                    id=str(c.raw.get("id")),
                    author=_display(c.raw.get("author")),
                    body=_plain(c.raw.get("body")),
                    created_at=parse_time(c.raw.get("created")),
                )
                for c in comments
            ),
            closed_at=parse_time(fields.get("resolutiondate")) if done else None,
            linked=self._linked(fields, remote),
            extra={"people": tuple(p for p in people if p), "id": str(raw.get("id") or "")},
        )

    def fetch_postmortem(
        self, ref: PostmortemRef, *, site: str = "", scope: ReadScope | None = None
    ) -> Postmortem:
        """Read a postmortem: a Jira issue, a Confluence page, or a URL of either.

        With `scope`, an issue in a project outside it is refused before any request, and a
        page in a space outside it before its body is used (a page id alone does not say
        which space it is in; the page's own answer does).
        """
        # Ids are checked before they go into a request path: a key or page id comes from
        # text anyone can write ("../../myself" would otherwise be requested as is).
        if ref.kind == "issue":
            return self._issue_postmortem(ref, locators.jira_key(ref.locator), scope)
        if ref.kind == "confluence":
            page_id = locators.confluence_page_id(ref.locator)
            return self._page_postmortem(ref, PageTarget(page_id=page_id), scope)
        if ref.kind == "url":
            url = ref.url or ref.locator
            if m := re.match(re.escape(self.site) + r"/browse/([A-Z][A-Z0-9_]*-\d+)\b", url):
                return self._issue_postmortem(ref, m.group(1), scope)
            target = page_target(url, self.confluence_url)
            if target is None:
                raise TrackerError(
                    f"cannot read the postmortem at {url}: only Jira issues and Confluence "
                    f"pages on {self.confluence_url} are readable",
                    transient=False,
                )
            return self._page_postmortem(ref, target, scope)
        raise TrackerError(f"Jira cannot read a postmortem of kind {ref.kind!r}", transient=False)

    def _issue_postmortem(
        self, ref: PostmortemRef, key: str, scope: ReadScope | None
    ) -> Postmortem:
        _check_project(scope, key, ref.locator)
        raw = self._issue_raw(key, fields="summary,description,updated").raw
        fields = raw.get("fields") or {}
        key = str(raw.get("key") or key)
        # A moved issue answers under its new key, which may be in another project.
        _check_project(scope, key, ref.locator)
        text, fmt = _description(fields.get("description"))
        return Postmortem(
            ref=ref,
            title=str(fields.get("summary") or ""),
            text=text,
            format=fmt,
            url=self._browse(key),
            updated_at=parse_time(fields.get("updated")),
            source=f"Jira project {_project_of(key)}",
        )

    def _page_postmortem(
        self, ref: PostmortemRef, target: PageTarget, scope: ReadScope | None
    ) -> Postmortem:
        # Known without asking (no space allowed, or the URL names another): no request.
        if scope is not None and (
            not scope.confluence
            or (target.space and not scope.allows_confluence(target.space))
        ):
            raise OutsideScope(ref.locator)
        page = self.confluence.read(target, spaces=None if scope is None else scope.confluence)
        return Postmortem(
            ref=ref,
            title=page.title,
            text=self.confluence.to_text(page.storage),
            format="markdown",
            url=page.url or ref.url,
            updated_at=page.updated_at,
            source=f"Confluence space {page.space}" if page.space else "Confluence",
        )

    def _comments(self, key: str, total: int | None = None) -> list:
        """All comments, paged. With the issue's comment total known, a server that caps
        pages below page_size is still read to the end; without it a short page ends."""
        out: list = []
        while True:
            with self._errors(f"Jira GET comments {key}"):
                page = self._client().comments(key, start_at=len(out), max_results=self.page_size)
            out.extend(page)
            if not page or (len(out) >= total if total is not None else len(page) < self.page_size):
                return out

    def _linked(self, fields: dict, remote: list[dict]) -> tuple[PostmortemRef, ...]:
        refs: list[PostmortemRef] = []
        for link in fields.get("issuelinks") or []:
            other = link.get("outwardIssue") or link.get("inwardIssue") or {}
            if not other.get("key") or not self._link_type_ok(link.get("type") or {}):
                continue
            type_name = _type_name(other.get("fields") or {})
            if not self.pm_types or type_name.lower() in self.pm_types:
                refs.append(PostmortemRef("issue", other["key"], self._browse(other["key"])))
        for link in remote:
            obj = link.get("object") or {}
            url = str(obj.get("url") or "")
            target = page_target(url, self.confluence_url, str(link.get("globalId") or ""))
            if target and target.page_id:
                refs.append(PostmortemRef("confluence", target.page_id, url))
            elif target or _SAYS_POSTMORTEM.search(
                f"{obj.get('title') or ''} {link.get('relationship') or ''}"
            ):
                refs.append(PostmortemRef("url", url, url))
        if self.url_field and (url := self._url_value(fields)):
            target = page_target(url, self.confluence_url)
            if target and target.page_id:
                refs.append(PostmortemRef("confluence", target.page_id, url))
            else:
                refs.append(PostmortemRef("url", url, url))
        return tuple(dict.fromkeys(r for r in refs if r.locator))

    def _link_type_ok(self, link_type: dict) -> bool:
        if not self.link_types:
            return True
        names = {str(link_type.get(k) or "").lower() for k in ("name", "inward", "outward")}
        return bool(names & self.link_types)

    def _url_value(self, fields: dict) -> str:
        value = self._field_value(fields, self.url_field or "")
        if isinstance(value, dict):
            value = value.get("value") or value.get("url")
        m = _URL.search(value) if isinstance(value, str) else None
        return m.group(0) if m else ""

    def _severity(self, fields: dict) -> str | None:
        if not self.severity_field:
            return None
        value = self._field_value(fields, self.severity_field)
        if isinstance(value, list):  # multi-select: the first option
            value = value[0] if value else None
        if isinstance(value, dict):
            value = value.get("value") or value.get("name")
        return str(value) if value not in (None, "") else None

    def _field_value(self, fields: dict, name_or_id: str) -> object:
        """A field by id ("priority", "customfield_10050") or by display name ("Severity")."""
        if name_or_id in fields:
            return fields[name_or_id]
        if self._field_ids is None:
            with self._errors("Jira GET field"):
                self._field_ids = {
                    str(f.get("name", "")).lower(): str(f["id"]) for f in self._client().fields()
                }
        return fields.get(self._field_ids.get(name_or_id.lower(), name_or_id))

    # ---- writing

    def upsert_comment(self, ref: IncidentRef, marker: str, body: str) -> str:
        """Edit the service's own comment holding `marker`, else add one.

        Jira wiki has no hidden comments, so the marker is visible text the service renders
        inside the body, matched as a substring. Only comments by the API user (or the
        configured bot_account) count: a person quoting the comment keeps their words.
        """
        bot = self._bot_ids()
        mine = [
            c
            for c in self._comments(ref.key)
            if marker in _plain(c.raw.get("body")) and bot & set(_user_ids(c.raw.get("author")))
        ]
        if not mine:
            with self._errors(f"Jira POST comment {ref.key}"):
                return str(self._client().add_comment(ref.key, body).id)
        comment = mine[0]
        # Jira trims bodies and may store CRLF; compare what it would store.
        if _norm(_plain(comment.raw.get("body"))) != _norm(body):
            with self._errors(f"Jira PUT comment {comment.id} on {ref.key}"):
                comment.update(body=body)
        # A create whose answer was lost (a timeout, then a retry) can land after the retry
        # looked: two comments. The oldest stays, the others go, so one is kept.
        for extra in mine[1:]:
            try:
                with self._errors(f"Jira DELETE comment {extra.id} on {ref.key}"):
                    extra.delete()
            except NotFound:
                pass  # already gone: the goal holds
        return str(comment.id)

    def _bot_ids(self) -> set[str]:
        if self.bot_account:
            return {self.bot_account}
        return set(_user_ids(self._myself()))

    def set_verdict_labels(self, ref: IncidentRef, keep: str, remove: Iterable[str]) -> None:
        remove = [x for x in dict.fromkeys(remove) if x != keep]
        for label in (keep, *remove):
            if not label or re.search(r"\s", label):
                raise TrackerError(
                    f"Jira label {label!r} is invalid: labels cannot be empty or contain spaces",
                    transient=False,
                )
        issue = self._issue_raw(ref.key, fields="labels")
        current = set(issue.raw.get("fields", {}).get("labels") or ())
        ops = [{"add": keep}] if keep not in current else []
        ops += [{"remove": x} for x in remove if x in current]
        if not ops:
            return  # already right: no write, so no webhook and no history entry
        with self._errors(f"Jira PUT labels on {ref.key}"):
            issue.update(update={"labels": ops})

    def reopen(self, ref: IncidentRef) -> None:
        with self._errors(f"Jira GET transitions {ref.key}"):
            transitions = self._client().transitions(ref.key)
        wanted = self.reopen_transition.lower()
        match = next((t for t in transitions if str(t.get("name", "")).lower() == wanted), None)
        if match is None:
            fields = self._issue_raw(ref.key, fields="status").raw.get("fields") or {}
            if _category(fields) not in self.done:
                return  # someone reopened it already
            names = ", ".join(str(t.get("name")) for t in transitions) or "none"
            raise TrackerError(
                f"Jira transition {self.reopen_transition!r} is not available on {ref.key} "
                f"(available: {names}); set jira.reopen_transition",
                transient=False,
            )
        with self._errors(f"Jira POST transition {match.get('name')!r} on {ref.key}"):
            self._client().transition_issue(ref.key, str(match["id"]))

    # ---- listing

    def recently_closed(self, project: str, since: datetime) -> list[IncidentRef]:
        """Issues of `project` resolved since `since` (JQL in the API user's time zone).

        Data Center pages `GET search` by startAt. On Cloud the library routes `search_issues`
        to `search/jql` (the old endpoint is gone there), which pages by nextPageToken, so
        Cloud goes through `enhanced_search_issues` directly.
        """
        quoted = project.replace("\\", "\\\\").replace('"', '\\"')
        jql = (
            f'project = "{quoted}" AND statusCategory = Done '
            f'AND resolved >= "{self._jql_time(since)}" ORDER BY resolved ASC'
        )
        client = self._client()
        found: list[IncidentRef] = []
        what = f"Jira search recently closed in {project}"
        if self._is_cloud():
            token = None
            while True:
                with self._errors(what):
                    page = client.enhanced_search_issues(
                        jql, nextPageToken=token, maxResults=self.page_size, fields=["project"]
                    )
                found += [self._ref_of(i.raw) for i in page]
                token = page.nextPageToken
                if not token or not page:
                    break
        else:
            while True:
                with self._errors(what):
                    page = client.search_issues(
                        jql, startAt=len(found), maxResults=self.page_size, fields=["project"]
                    )
                found += [self._ref_of(i.raw) for i in page]
                if not page or len(found) >= (page.total or 0):
                    break
        return list(dict.fromkeys(found))

    def _jql_time(self, since: datetime) -> str:
        # JQL dates are read in the searching user's profile time zone, not UTC.
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        try:
            zone = ZoneInfo(str(self._myself().get("timeZone") or "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        return since.astimezone(zone).strftime(_JQL_TIME)

    def _ref_of(self, raw: dict) -> IncidentRef:
        key = str(raw.get("key"))
        project = ((raw.get("fields") or {}).get("project") or {}).get("key") or _project_of(key)
        return IncidentRef(TRACKER, self.site, project, key)

    def can_write(self, ref: IncidentRef, user: str) -> bool:
        """The reporter, an assignee, or anyone with EDIT_ISSUES on the project.

        The library has no call for another user's permissions, so this uses its own
        session through `JIRA._get_json` (same auth, timeout and error handling).
        """
        if not user:
            return False
        fields = self._issue_raw(ref.key, fields="reporter,assignee,project").raw.get("fields")
        fields = fields or {}
        if user in {*_user_ids(fields.get("reporter")), *_user_ids(fields.get("assignee"))}:
            return True
        project = ref.project or (fields.get("project") or {}).get("key") or ""
        params = {"permissions": "EDIT_ISSUES", "projectKey": project}
        params["accountId" if self._is_cloud() else "username"] = user
        with self._errors(f"Jira GET user/permission/search in {project}"):
            users = self._client()._get_json("user/permission/search", params=params)
        # Server's `username` is a prefix search: only an exact id counts.
        return any(user in _user_ids(u) for u in users or [])

    def incidents_linking(self, postmortem: IncidentRef) -> list[IncidentRef]:
        """Issues linked to the postmortem issue, other postmortem issues excepted."""
        fields = self._issue_raw(postmortem.key, fields="issuelinks").raw.get("fields") or {}
        refs = []
        for link in fields.get("issuelinks") or []:
            other = link.get("outwardIssue") or link.get("inwardIssue") or {}
            key = other.get("key")
            if key and _type_name(other.get("fields") or {}).lower() not in self.pm_types:
                refs.append(IncidentRef(TRACKER, self.site, _project_of(key), key))
        return list(dict.fromkeys(refs))

    def repo_config(self, project: str) -> str | None:
        return None  # Jira projects have no config file; the service's policy applies

    def projects(self) -> list[str]:
        """Project keys these credentials can see (for reconcile)."""
        with self._errors("Jira GET projects"):
            return [str(p.key) for p in self._client().projects()]


def _check_project(scope: ReadScope | None, key: str, what: str) -> None:
    if scope is not None and not scope.allows_jira(_project_of(key)):
        raise OutsideScope(what)


def _description(value: object) -> tuple[str, str]:
    """REST v2 gives wiki markup; ADF (v3, some Cloud set-ups) is a dict kept as JSON."""
    if isinstance(value, dict):
        return json.dumps(value), "adf"
    return (value if isinstance(value, str) else ""), "jira"


def _norm(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


