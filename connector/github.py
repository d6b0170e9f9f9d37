"""GitHub: webhook payloads -> WebhookEvents, and the Tracker protocol over PyGithub.

`parse_event` is pure (no I/O). `GitHubTracker` does every REST call through PyGithub with
client-side retries and throttling switched off: the worker owns retries and backoff, so a
failure must surface at once as a `TrackerError` that says whether and when to try again.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from math import ceil

import requests
from github import Auth, Github, GithubException, GithubIntegration, RateLimitExceededException
from github.Installation import Installation
from github.Issue import Issue
from github.Repository import Repository

from connector import locators
from connector.base import (
    CLOSED,
    GITHUB,
    INCIDENT_EDITED,
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

DEFAULT_SITE = "https://api.github.com"
CONFIG_PATH = ".github/pmguard.yml"
WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})

# A line of its own; quoted ("> /pmguard recheck") or inline-code mentions do not count.
_RECHECK = re.compile(r"^[ \t]*/pmguard[ \t]+recheck[ \t]*$", re.IGNORECASE | re.MULTILINE)
_MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".mdx")


# ---- webhooks ---------------------------------------------------------------------------


WEBHOOK_EVENTS = ("issues", "issue_comment")  # the events parse_event reads

# (path, types, what) of every field parse_event reads: present with another type, the
# delivery is malformed. Absent (or null) is fine: such a delivery is just irrelevant.
_SHAPES: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("action", str, "a string"),
    ("issue", dict, "an object"),
    ("issue.number", int, "an integer"),
    ("issue.state", str, "a string"),
    ("issue.state_reason", str, "a string"),
    ("issue.labels", list, "a list of objects"),
    ("repository", dict, "an object"),
    ("repository.full_name", str, "a string"),
    ("sender", dict, "an object"),
    ("sender.login", str, "a string"),
    ("comment", dict, "an object"),
    ("comment.body", str, "a string"),
    ("installation", dict, "an object"),
)


def _check_shapes(payload: dict) -> None:
    """MalformedPayload naming the first field parse_event reads that has the wrong type."""
    for path, types, what in _SHAPES:
        parent, _, name = path.rpartition(".")
        container = payload.get(parent) if parent else payload
        value = container.get(name) if isinstance(container, dict) else None
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            raise MalformedPayload(f"{path} must be {what}")
    labels = (payload.get("issue") or {}).get("labels") or []
    if not all(isinstance(label, dict) and isinstance(label.get("name", ""), str)
               for label in labels):
        raise MalformedPayload("issue.labels must be a list of objects with a string name")


def parse_event(
    event: str, payload: dict, *, site: str, bot_login: str | None = None
) -> WebhookEvent | None:
    """Reduce a GitHub delivery to what the service must do, or None when nothing.

    `site` is the API base URL the service is configured with; it becomes the ref's site.
    MalformedPayload when a field it reads has the wrong type.
    """
    if not isinstance(payload, dict) or event not in WEBHOOK_EVENTS:
        return None
    _check_shapes(payload)
    issue = payload.get("issue")
    repo = payload.get("repository")
    if issue is None or repo is None or not repo.get("full_name") or issue.get("number") is None:
        return None
    # Issue events also fire for pull-request conversations; those are never incidents.
    if "pull_request" in issue:
        return None
    action = payload.get("action")
    sender = payload.get("sender") if isinstance(payload.get("sender"), dict) else {}
    actor = str(sender.get("login") or "")
    by_us = bool(bot_login) and actor.lower() == (bot_login or "").lower()
    closed = issue.get("state") == "closed"

    kind: str | None = None
    if event == "issues":
        if action == "closed":
            kind = CLOSED
        elif action == "reopened":
            kind = REOPENED
        elif action == "edited" and not by_us and _body_changed(payload.get("changes")):
            kind = INCIDENT_EDITED
        elif action in ("labeled", "unlabeled") and closed and not by_us:
            # Our own verdict labels come back as these events; only humans' count.
            kind = INCIDENT_EDITED
    elif action in ("created", "edited"):
        comment = payload.get("comment") if isinstance(payload.get("comment"), dict) else {}
        # Our own comment comes back as issue_comment.created: ignore it and any other
        # bot so two bots can never talk to each other forever.
        if by_us or sender.get("type") == "Bot":
            return None
        if _RECHECK.search(str(comment.get("body") or "")):
            kind = RECHECK
        elif closed:
            kind = INCIDENT_EDITED  # a comment can add a "Postmortem: #12" line
    if kind is None:
        return None

    installation = payload.get("installation")
    inst_id = installation.get("id") if isinstance(installation, dict) else None
    labels = tuple(
        str(label["name"])
        for label in issue.get("labels") or ()
        if isinstance(label, dict) and label.get("name")
    )
    return WebhookEvent(
        kind=kind,
        ref=IncidentRef(GITHUB, site.rstrip("/"), str(repo["full_name"]), str(issue["number"])),
        actor=actor,
        labels=labels,
        state_reason=issue.get("state_reason"),
        installation_id=inst_id if isinstance(inst_id, int) else None,
    )


def _body_changed(changes: object) -> bool:
    # Real deliveries carry changes.body and/or changes.title; a title-only edit changes
    # nothing we check. When GitHub sends no usable `changes`, assume the body may differ.
    if not isinstance(changes, dict) or not changes:
        return True
    return "body" in changes


# ---- the tracker ------------------------------------------------------------------------


class GitHubTracker:
    """The Tracker protocol for one GitHub site (github.com, Enterprise, or a fake)."""

    name = GITHUB

    def __init__(
        self,
        site: str = DEFAULT_SITE,
        *,
        token: str | None = None,
        app_id: int | None = None,
        private_key: str | None = None,
        installation_id: int | None = None,
        timeout: float = 15,
        bot_login: str | None = None,
        postmortem_label: str = "postmortem",
        per_page: int = 100,
    ) -> None:
        if not token and not (app_id and private_key):
            raise ValueError("GitHub needs a token, or an app id and private key")
        self.site = site.rstrip("/")
        self.bot_login = bot_login
        self.postmortem_label = postmortem_label
        self.installation_id = installation_id
        # No client-side retry or throttle: the worker retries with backoff and needs to be
        # told at once how long to wait. Lazy objects save a GET before every write.
        options = dict(
            base_url=self.site,
            timeout=max(1, ceil(timeout)),  # PyGithub insists on an int
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
            per_page=per_page,
            lazy=True,
            user_agent="postmortem-guard (PyGithub)",
        )
        self._lock = threading.Lock()
        self._token_client: Github | None = None
        self._integration: GithubIntegration | None = None
        self._installations: dict[int, Github] = {}
        self._repo_installation: dict[str, int] = {}
        if token:
            self._token_client = Github(auth=Auth.Token(token), **options)
        else:
            self._integration = GithubIntegration(auth=Auth.AppAuth(app_id, private_key), **options)

    # ---- clients ---------------------------------------------------------------------

    def _client(self, project: str) -> Github:
        if self._token_client is not None:
            return self._token_client
        inst = self.installation_id or self._installation_for(project)
        return self._installation_client(inst)

    def _installation_for(self, project: str) -> int:
        key = project.lower()
        with self._lock:
            cached = self._repo_installation.get(key)
        if cached is not None:
            return cached
        owner, _, name = project.partition("/")
        assert self._integration is not None
        inst = self._integration.get_repo_installation(owner, name).id
        with self._lock:
            self._repo_installation[key] = inst
        return inst

    def _installation_client(self, inst: int) -> Github:
        with self._lock:
            client = self._installations.get(inst)
            if client is None:
                assert self._integration is not None
                # One client per installation keeps its access token until it expires.
                client = self._integration.get_github_for_installation(inst)
                self._installations[inst] = client
            return client

    def _forget(self, project: str) -> None:
        # The app may have been uninstalled or moved to another installation.
        with self._lock:
            self._repo_installation.pop(project.lower(), None)

    def _repo(self, project: str) -> Repository:
        return self._client(project).get_repo(project)

    def _issue(self, ref: IncidentRef) -> Issue:
        return self._repo(ref.project).get_issue(int(ref.key))

    @contextmanager
    def _errors(self, call: str, target: str, project: str | None = None) -> Iterator[None]:
        """Translate every failure inside into a TrackerError naming the call and target."""
        try:
            yield
        except TrackerError:
            raise
        except GithubException as exc:
            if project and self._integration is not None and exc.status in (401, 404):
                self._forget(project)
            raise github_error(exc, call, target) from exc
        except requests.RequestException as exc:
            raise TrackerError(
                f"GitHub {call} for {target} failed: {type(exc).__name__} (network)",
                transient=True,
            ) from exc

    # ---- Tracker protocol ------------------------------------------------------------

    def fetch_incident(self, ref: IncidentRef) -> Incident:
        with self._errors("fetch_incident", ref.display, ref.project):
            issue = self._issue(ref)
            comments = tuple(
                Comment(str(c.id), _login(c.user), c.body or "", c.created_at)
                for c in issue.get_comments()
            )
            linked = tuple(
                PostmortemRef("issue", f"{project}#{src.number}", src.html_url)
                for project, src in (*self._cross_references(issue), *self._sub_issues(issue))
                if self._is_postmortem(src)
            )
            return Incident(
                ref=ref,
                title=issue.title or "",
                body=issue.body or "",
                body_format="markdown",
                state=issue.state,
                url=issue.html_url,
                state_reason=issue.state_reason,
                labels=tuple(label.name for label in issue.labels),
                author=_login(issue.user) or None,
                assignees=tuple(_login(a) for a in issue.assignees if a),
                comments=comments,
                closed_at=issue.closed_at,
                linked=tuple(dict.fromkeys(linked)),
            )

    def fetch_postmortem(
        self, ref: PostmortemRef, *, site: str = "", scope: ReadScope | None = None
    ) -> Postmortem:
        """Read a postmortem issue or file. With `scope`, one in a repository outside it is
        refused before any request (OutsideScope)."""
        if ref.kind == "url":
            resolved = self.ref_from_url(ref.url or ref.locator)
            return self.fetch_postmortem(resolved, site=site, scope=scope)
        if ref.kind == "issue":
            # Parsed and checked first: the API path is built from these parts only.
            issue_ref = locators.github_issue(ref.locator)
            _check_scope(scope, issue_ref.project, ref.locator)
            with self._errors("fetch_postmortem", ref.locator, issue_ref.project):
                issue = self._repo(issue_ref.project).get_issue(issue_ref.number)
                return Postmortem(
                    ref=ref,
                    title=issue.title or "",
                    text=issue.body or "",
                    format="markdown",
                    url=issue.html_url,
                    updated_at=issue.updated_at,
                    source=f"repository {issue_ref.project}",
                )
        if ref.kind == "file":
            file_ref = locators.github_file(ref.locator)
            _check_scope(scope, file_ref.project, ref.locator)
            path = file_ref.path
            with self._errors("fetch_postmortem", ref.locator, file_ref.project):
                content = self._repo(file_ref.project).get_contents(
                    path, **({"ref": file_ref.ref} if file_ref.ref else {})
                )
                text = _file_text(content, ref.locator)
                return Postmortem(
                    ref=ref,
                    title=path.rsplit("/", 1)[-1],
                    text=text,
                    format="markdown" if path.lower().endswith(_MARKDOWN_SUFFIXES) else "text",
                    url=content.html_url or ref.url,
                    source=f"repository {file_ref.project}",
                )
        raise TrackerError(f"GitHub cannot read a postmortem of kind {ref.kind!r}", transient=False)

    def ref_from_url(self, url: str) -> PostmortemRef:
        """Turn a blob or issue URL on this GitHub site into a file or issue ref."""
        target = locators.github_url(url, self.web_hosts())
        if target is not None:
            kind = "issue" if isinstance(target, locators.GitHubIssue) else "file"
            return PostmortemRef(kind, target.locator, url)
        raise TrackerError(
            f"{url} is not a file or issue that GitHub at {self.site} can read", transient=False
        )

    def upsert_comment(self, ref: IncidentRef, marker: str, body: str) -> str:
        with self._errors("upsert_comment", ref.display, ref.project):
            issue = self._issue(ref)
            mine, first = [], None
            for comment in issue.get_comments():  # every page: the marker may be anywhere
                if marker not in (comment.body or ""):
                    continue
                if self._is_bot(comment.user):
                    mine.append(comment)
                first = first or comment
            found = mine[0] if mine else first
            if found is None:
                return str(issue.create_comment(body).id)
            if found.body != body:  # an unchanged PATCH still costs a write and a webhook
                found.edit(body)
            # A create whose answer was lost (a timeout, then a retry) can land after the
            # retry looked: two comments. The oldest stays, the others go, so one is kept.
            for extra in mine[1:]:
                try:
                    extra.delete()
                except GithubException as exc:
                    if exc.status != 404:  # already gone: the goal holds
                        raise
            return str(found.id)

    def set_verdict_labels(self, ref: IncidentRef, keep: str, remove: Iterable[str]) -> None:
        with self._errors("set_verdict_labels", ref.display, ref.project):
            issue = self._issue(ref)
            present = {label.name.lower(): label.name for label in issue.labels}
            # Add and delete one by one: replacing the whole set would race with humans.
            if keep.lower() not in present:
                issue.add_to_labels(keep)
            for name in dict.fromkeys(remove):
                actual = present.get(name.lower())
                if actual is None or name.lower() == keep.lower():
                    continue
                try:
                    issue.remove_from_labels(actual)
                except GithubException as exc:
                    if exc.status != 404:  # someone removed it meanwhile: the goal holds
                        raise

    def reopen(self, ref: IncidentRef) -> None:
        with self._errors("reopen", ref.display, ref.project):
            self._issue(ref).edit(state="open", state_reason="reopened")

    def recently_closed(self, project: str, since: datetime) -> list[IncidentRef]:
        if since.tzinfo is not None:
            since = since.astimezone(UTC).replace(tzinfo=None)  # PyGithub formats it as UTC
        with self._errors("recently_closed", project, project):
            issues = self._repo(project).get_issues(state="closed", since=since)
            return [
                IncidentRef(GITHUB, self.site, project, str(issue.number))
                for issue in issues
                if not _is_pull_request(issue)
            ]

    def can_write(self, ref: IncidentRef, user: str) -> bool:
        if not user:
            return False
        try:
            with self._errors("can_write", f"{user} on {ref.project}", ref.project):
                return (
                    self._repo(ref.project).get_collaborator_permission(user) in WRITE_PERMISSIONS
                )
        except NotFound:
            return False

    def incidents_linking(self, postmortem: IncidentRef) -> list[IncidentRef]:
        with self._errors("incidents_linking", postmortem.display, postmortem.project):
            issue = self._issue(postmortem)
            refs = [
                IncidentRef(GITHUB, self.site, project, str(src.number))
                for project, src in self._cross_references(issue)
            ]
            parent = _issue_url_ref(issue.raw_data.get("parent_issue_url") or "")
            if parent is not None:  # a postmortem kept as a sub-issue of its incident
                refs.append(IncidentRef(GITHUB, self.site, *parent))
            return [r for r in dict.fromkeys(refs) if r != postmortem]

    def repo_config(self, project: str, path: str = CONFIG_PATH) -> str | None:
        """The repository's own policy file (Probot-style), or None when it has none."""
        try:
            with self._errors("repo_config", f"{project}:{path}", project):
                return _file_text(self._repo(project).get_contents(path), f"{project}:{path}")
        except NotFound:
            return None

    def repositories(self) -> list[str]:
        """Every repository these credentials reach ("owner/repo")."""
        with self._errors("repositories", self.site):
            if self._token_client is not None:
                return [r.full_name for r in self._token_client.get_user().get_repos()]
            assert self._integration is not None
            if self.installation_id:
                installs = [self._integration.get_app_installation(self.installation_id)]
            else:
                installs = list(self._integration.get_installations())
            names: list[str] = []
            for inst in installs:
                # Listed through the cached installation client, so its token is reused
                # instead of minting a new one per sweep.
                client = self._installation_client(inst.id)
                for repo in Installation(client.requester, {}, {"id": inst.id}).get_repos():
                    names.append(repo.full_name)
                    with self._lock:  # saves a lookup when the worker reaches that repo
                        self._repo_installation[repo.full_name.lower()] = inst.id
            return names

    # ---- helpers -----------------------------------------------------------------------

    def _cross_references(self, issue: Issue) -> Iterator[tuple[str, Issue]]:
        """(project, source issue) for each issue (not PR) that mentions this one."""
        for event in issue.get_timeline():
            if event.event != "cross-referenced" or event.source is None:
                continue
            if event.source.type != "issue" or event.source.issue is None:
                continue
            src = event.source.issue
            project = _project_of(src)
            if project and not _is_pull_request(src):
                yield project, src

    def _sub_issues(self, issue: Issue) -> Iterator[tuple[str, Issue]]:
        """(project, sub-issue) for each sub-issue of this one."""
        # The issue's own JSON counts them: no request for the many that have none, and
        # none on a GitHub Enterprise version that predates sub-issues (no summary).
        summary = issue.raw_data.get("sub_issues_summary") or {}
        if not summary.get("total"):
            return
        try:
            for sub in issue.get_sub_issues():
                project = _project_of(sub)
                if project:
                    yield project, sub
        except GithubException as exc:
            if exc.status != 404:
                raise

    def _is_postmortem(self, issue: Issue) -> bool:
        wanted = self.postmortem_label.lower()
        return any(label.name.lower() == wanted for label in issue.labels)

    def _is_bot(self, user) -> bool:
        return bool(self.bot_login) and _login(user).lower() == (self.bot_login or "").lower()

    def web_hosts(self) -> set[str]:
        """Hosts whose issue and blob URLs this site's API reads."""
        return locators.github_web_hosts(self.site)


def github_error(exc: GithubException, call: str, target: str) -> TrackerError:
    """Map a PyGithub error to NotFound or a TrackerError that says whether to retry."""
    status = exc.status
    headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
    message = exc.message or (exc.data.get("message") if isinstance(exc.data, dict) else None)
    text = f"GitHub {call} for {target} failed: {status} {message or ''}".rstrip()
    if status == 404:
        return NotFound(text)
    rate_limited = status == 429 or (
        status == 403
        and (
            isinstance(exc, RateLimitExceededException)
            or headers.get("x-ratelimit-remaining") == "0"
            or "retry-after" in headers
        )
    )
    if rate_limited:
        # GitHub asks to wait at least a minute when it gives no hint (secondary limits).
        return TrackerError(text, transient=True, retry_after=retry_after(headers) or 60.0)
    if status is not None and status >= 500:
        # X-RateLimit-Reset rides on every response; only Retry-After speaks about a 5xx.
        return TrackerError(text, transient=True, retry_after=retry_after(headers, reset=False))
    return TrackerError(text, transient=False)


def retry_after(
    headers: dict[str, str], now: float | None = None, *, reset: bool = True
) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date), else `X-RateLimit-Reset`
    (when `reset`); at least 1. Header names in lower case."""
    now = time.time() if now is None else now
    value = headers.get("retry-after")
    if value:
        try:
            return max(1.0, float(value))
        except ValueError:
            try:
                return max(1.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    epoch = headers.get("x-ratelimit-reset") if reset else None
    if epoch:
        try:
            return max(1.0, float(epoch) - now)
        except ValueError:
            pass
    return None


def _check_scope(scope: ReadScope | None, project: str, what: str) -> None:
    if scope is not None and not scope.allows_github(project):
        raise OutsideScope(what)


def _file_text(content, what: str) -> str:
    if isinstance(content, list):
        raise TrackerError(f"{what} is a directory, not a file", transient=False)
    if content.encoding != "base64":
        # The contents API sends no content for files over 1 MB.
        raise TrackerError(f"{what} is too large for the GitHub contents API", transient=False)
    try:
        return content.decoded_content.decode("utf-8")
    except UnicodeDecodeError:
        raise TrackerError(f"{what} is not UTF-8 text", transient=False) from None


def _login(user) -> str:
    return str(user.login) if user is not None and user.login else ""


def _is_pull_request(issue: Issue) -> bool:
    # Reading `issue.pull_request` on a plain issue would fetch the issue again (the key is
    # absent, so PyGithub completes the object); the web URL says the same for free.
    return "/pull/" in (issue.html_url or "")


def _issue_url_ref(url: str) -> tuple[str, str] | None:
    """("owner/repo", number) from an API issue URL (…/repos/owner/repo/issues/12)."""
    parts = url.rstrip("/").split("/")
    if len(parts) >= 5 and parts[-5] == "repos" and parts[-2] == "issues" \
            and parts[-1].isdigit():
        return f"{parts[-4]}/{parts[-3]}", parts[-1]
    return None


def _project_of(issue: Issue) -> str:
    """ "owner/repo" from an issue's repository_url (no extra request)."""
    parts = (issue.repository_url or "").rstrip("/").split("/")
    return f"{parts[-2]}/{parts[-1]}" if len(parts) >= 2 and parts[-3:-2] == ["repos"] else ""
