"""A fake GitHub REST API on 127.0.0.1 that PyGithub talks to unmodified.

Shapes follow the recorded responses in ../shared/fixtures/github/api/ (top-level keys kept,
nested objects trimmed to what PyGithub and the service read). Every `url`, `*_url`,
`html_url` and `Link` header points at the fake itself, because PyGithub follows the URLs the
server returns and refuses hosts other than its base URL's.

    with FakeGitHub() as gh:
        gh.add_repo("acme/web")
        n = gh.add_issue("acme/web", "Outage", "body", labels=["incident"], state="closed")
        Github(base_url=gh.url, auth=Auth.Token(gh.token), retry=None, ...)
"""

from __future__ import annotations

import base64
import hashlib
import http
import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from math import ceil
from typing import Any
from urllib.parse import quote, urlencode

import jwt
from flask import Flask, Response, abort, g, request

from sandbox.server import LocalServer

DOCS = "https://docs.github.com/rest"
DEFAULT_TOKEN = "ghp_fakeTokenForTests0000000000000000000"
WRITE_ROLES = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read"}


def _ts(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class _Issue:
    number: int
    id: int
    title: str
    body: str
    user: str
    labels: list[str]
    assignees: list[str]
    state: str = "open"
    state_reason: str | None = None
    pull_request: bool = False
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    closed_at: datetime | None = None
    closed_by: str | None = None
    comment_ids: list[int] = field(default_factory=list)
    # (event, actor, when, extra): rendered live on GET .../timeline
    events: list[tuple[str, str, datetime, Any]] = field(default_factory=list)
    sub_issues: list[tuple[str, int]] = field(default_factory=list)  # (repo lower, number)
    parent: tuple[str, int] | None = None


@dataclass
class _Comment:
    id: int
    repo: str
    number: int
    body: str
    user: str
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)


@dataclass
class _Repo:
    id: int
    full_name: str
    private: bool
    default_branch: str
    issues: dict[int, _Issue] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (ref, path) -> bytes
    permissions: dict[str, str] = field(default_factory=dict)  # login (lower) -> role
    label_ids: dict[str, int] = field(default_factory=dict)  # name (lower) -> id

    @property
    def owner(self) -> str:
        return self.full_name.split("/")[0]


@dataclass
class _Rule:
    method: str
    pattern: re.Pattern
    times: int | None
    status: int = 0
    headers: dict[str, str] | None = None
    body: Any = None
    seconds: float = 0.0


class FakeGitHub(LocalServer):
    """In-memory GitHub with seeding helpers, readers, a request log and fault injection."""

    def __init__(self, *, token: str = DEFAULT_TOKEN, user: str = "pmguard-bot", prefix: str = ""):
        super().__init__()
        self.token = token
        self.tokens = {token}
        self.user = user  # whom the personal access token(s) belong to
        self.prefix = prefix.rstrip("/")  # "/api/v3" imitates GitHub Enterprise
        self.requests: list[tuple[str, str, int]] = []
        self.root = ""
        self._lock = threading.RLock()
        self._repos: dict[str, _Repo] = {}
        self._comments: dict[int, _Comment] = {}
        self._user_ids: dict[str, int] = {}
        self._ids = iter(range(1_000_001, 10**9))
        self._faults: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._app: tuple[int, str, str] | None = None  # (app id, public key PEM, slug)
        self._installations: dict[int, list[str]] = {}
        self._installation_tokens: dict[str, tuple[int, datetime]] = {}
        self.app = self._build_app()

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """API base URL, for PyGithub's base_url."""
        return f"{self.root}{self.prefix}"

    @property
    def web_url(self) -> str:
        """Where html_url links point (github.com's role)."""
        return self.root

    def started(self, root: str) -> None:
        self.root = root

    # ---- seeding -------------------------------------------------------------------------

    def add_repo(self, full_name: str, private: bool = False, default_branch: str = "main") -> None:
        with self._lock:
            if full_name.lower() not in self._repos:
                self._repos[full_name.lower()] = _Repo(
                    next(self._ids), full_name, private, default_branch
                )

    def add_issue(
        self,
        repo: str,
        title: str,
        body: str = "",
        labels: Iterable[str] = (),
        state: str = "open",
        user: str = "alice",
        assignees: Iterable[str] = (),
        *,
        pull_request: bool = False,
        state_reason: str | None = None,
    ) -> int:
        with self._lock:
            r = self._repo(repo)
            number = len(r.issues) + 1  # issues and pull requests share numbers
            issue = _Issue(
                number,
                next(self._ids),
                title,
                body,
                user,
                [],
                list(assignees),
                pull_request=pull_request,
            )
            r.issues[number] = issue
            for name in labels:
                self._add_label(r, issue, name, user, event=False)
            if state == "closed":
                self._close(issue, state_reason or "completed", user)
            return number

    def add_comment(self, repo: str, number: int, body: str, user: str = "alice") -> int:
        with self._lock:
            return self._new_comment(self._repo(repo), self._issue(repo, number), body, user).id

    def edit_issue(
        self, repo: str, number: int, *, body: str | None = None, title: str | None = None
    ) -> None:
        with self._lock:
            issue = self._issue(repo, number)
            if body is not None:
                issue.body = body
            if title is not None:
                issue.title = title
            issue.updated_at = _now()

    def close_issue(
        self, repo: str, number: int, state_reason: str = "completed", user: str = "alice"
    ) -> None:
        with self._lock:
            self._close(self._issue(repo, number), state_reason, user)

    def add_file(self, repo: str, path: str, text: str | bytes, ref: str = "main") -> None:
        data = text.encode("utf-8") if isinstance(text, str) else text
        with self._lock:
            self._repo(repo).files[(ref, path.strip("/"))] = data

    def cross_reference(
        self, from_repo: str, from_number: int, to_repo: str, to_number: int, actor: str = "alice"
    ) -> None:
        """Record that from_repo#from_number mentions to_repo#to_number (a timeline event on
        the target, as GitHub records when an issue body or comment links another)."""
        with self._lock:
            self._issue(from_repo, from_number)  # must exist
            self._issue(to_repo, to_number).events.append(
                ("cross-referenced", actor, _now(), (from_repo.lower(), from_number))
            )

    def add_sub_issue(
        self, parent_repo: str, parent_number: int, child_repo: str, child_number: int
    ) -> None:
        """Make child a sub-issue of parent (GitHub allows one parent per issue)."""
        with self._lock:
            parent = self._issue(parent_repo, parent_number)
            child = self._issue(child_repo, child_number)
            if child.parent is not None:
                raise ValueError(f"{child_repo}#{child_number} already has a parent")
            parent.sub_issues.append((child_repo.lower(), child_number))
            child.parent = (parent_repo.lower(), parent_number)

    def set_permission(self, repo: str, user: str, permission: str) -> None:
        with self._lock:
            self._repo(repo).permissions[user.lower()] = permission

    def set_updated_at(self, repo: str, number: int, when: datetime) -> None:
        with self._lock:
            self._issue(repo, number).updated_at = when.astimezone(UTC).replace(microsecond=0)

    def register_app(self, app_id: int, public_key_pem: str | bytes, slug: str = "pmguard") -> None:
        """Accept JWTs signed by this app's private key (App auth)."""
        pem = public_key_pem.decode() if isinstance(public_key_pem, bytes) else public_key_pem
        with self._lock:
            self._app = (app_id, pem, slug)

    def add_installation(self, installation_id: int, repos: Iterable[str]) -> None:
        with self._lock:
            self._installations[installation_id] = [r.lower() for r in repos]

    def add_token(self, token: str) -> None:
        with self._lock:
            self.tokens.add(token)

    # ---- readers (for assertions) --------------------------------------------------------

    def comments(self, repo: str, number: int) -> list[dict]:
        with self._lock:
            issue = self._issue(repo, number)
            return [
                {
                    "id": c.id,
                    "body": c.body,
                    "user": c.user,
                    "created_at": _ts(c.created_at),
                    "updated_at": _ts(c.updated_at),
                }
                for c in (self._comments[i] for i in issue.comment_ids)
            ]

    def labels(self, repo: str, number: int) -> list[str]:
        with self._lock:
            return list(self._issue(repo, number).labels)

    def issue(self, repo: str, number: int) -> dict:
        with self._lock:
            return self._issue_json(self._repo(repo), self._issue(repo, number))

    def calls(self, method: str | None = None, pattern: str = "") -> list[tuple[str, str, int]]:
        """Logged requests filtered by method and a path regex."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r[0] == method) and re.search(pattern, r[1])
            ]

    # ---- fault injection -----------------------------------------------------------------

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int = 500,
        times: int | None = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next `times` matching requests (None: all) with `status`.

        `method` may be "*"; `path_regex` is searched in the path without the API prefix.
        """
        with self._lock:
            self._faults.append(
                _Rule(method.upper(), re.compile(path_regex), times, status, headers, body)
            )

    def clear_faults(self) -> None:
        """The outage is over: drop every pending fault and delay."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def delay(self, method: str, path_regex: str, seconds: float, times: int | None = 1) -> None:
        with self._lock:
            self._delays.append(
                _Rule(method.upper(), re.compile(path_regex), times, seconds=seconds)
            )

    def rate_limit(
        self, method: str, path_regex: str, *, reset_in: int = 30, times: int = 1
    ) -> None:
        """A primary rate limit as GitHub sends it: 403, remaining 0, reset epoch."""
        self.fail(
            method,
            path_regex,
            403,
            times,
            headers={
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Used": "5000",
                "X-RateLimit-Reset": str(int(time.time()) + reset_in),
                "X-RateLimit-Resource": "core",
            },
            body={
                "message": f"API rate limit exceeded for user ID {self._user_id(self.user)}.",
                "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api",
            },
        )

    # ---- internals: state ----------------------------------------------------------------

    def _repo(self, full_name: str) -> _Repo:
        try:
            return self._repos[full_name.lower()]
        except KeyError:
            raise KeyError(f"fake GitHub has no repository {full_name}; add_repo() it") from None

    def _issue(self, repo: str, number: int) -> _Issue:
        try:
            return self._repo(repo).issues[number]
        except KeyError:
            raise KeyError(f"fake GitHub has no issue {repo}#{number}") from None

    def _user_id(self, login: str) -> int:
        return self._user_ids.setdefault(login.lower(), 100 + len(self._user_ids))

    def _close(self, issue: _Issue, state_reason: str | None, actor: str) -> None:
        issue.state, issue.state_reason = "closed", state_reason or "completed"
        issue.closed_at = issue.updated_at = _now()
        issue.closed_by = actor
        issue.events.append(("closed", actor, _now(), None))

    def _reopen(self, issue: _Issue, actor: str) -> None:
        issue.state, issue.state_reason, issue.closed_at = "open", "reopened", None
        issue.updated_at = _now()
        issue.events.append(("reopened", actor, _now(), None))

    def _add_label(self, repo: _Repo, issue: _Issue, name: str, actor: str, event: bool = True):
        # GitHub creates a label on first use; names match case-insensitively.
        repo.label_ids.setdefault(name.lower(), next(self._ids))
        if name.lower() not in (x.lower() for x in issue.labels):
            issue.labels.append(name)
            issue.updated_at = _now()
            if event:
                issue.events.append(("labeled", actor, _now(), name))

    def _new_comment(self, repo: _Repo, issue: _Issue, body: str, user: str) -> _Comment:
        comment = _Comment(next(self._ids), repo.full_name.lower(), issue.number, body, user)
        self._comments[comment.id] = comment
        issue.comment_ids.append(comment.id)
        issue.updated_at = _now()
        issue.events.append(("commented", user, comment.created_at, comment.id))
        return comment

    # ---- internals: JSON shapes ----------------------------------------------------------

    def _user_json(self, login: str) -> dict:
        uid = self._user_id(login)
        return {
            "login": login,
            "id": uid,
            "node_id": f"U_fake{uid}",
            "avatar_url": f"{self.root}/avatars/u/{uid}",
            "gravatar_id": "",
            "url": f"{self.url}/users/{quote(login)}",
            "html_url": f"{self.root}/{quote(login)}",
            "type": "Bot" if login.endswith("[bot]") else "User",
            "user_view_type": "public",
            "site_admin": False,
        }

    def _reactions(self, url: str) -> dict:
        counts = dict.fromkeys(
            ("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes"), 0
        )
        return {"url": f"{url}/reactions", "total_count": 0, **counts}

    def _association(self, repo: _Repo, login: str) -> str:
        if login.lower() == repo.owner.lower():
            return "OWNER"
        return "COLLABORATOR" if login.lower() in repo.permissions else "NONE"

    def _label_json(self, repo: _Repo, name: str) -> dict:
        lid = repo.label_ids.setdefault(name.lower(), next(self._ids))
        return {
            "id": lid,
            "node_id": f"LA_fake{lid}",
            "url": f"{self.url}/repos/{repo.full_name}/labels/{quote(name, safe='')}",
            "name": name,
            "color": "ededed",
            "default": False,
            "description": None,
        }

    def _issue_json(self, repo: _Repo, issue: _Issue) -> dict:
        api = f"{self.url}/repos/{repo.full_name}"
        url = f"{api}/issues/{issue.number}"
        web = f"{self.root}/{repo.full_name}/{'pull' if issue.pull_request else 'issues'}"
        data = {
            "url": url,
            "repository_url": api,
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": f"{web}/{issue.number}",
            "id": issue.id,
            "node_id": f"I_fake{issue.id}",
            "number": issue.number,
            "title": issue.title,
            "user": self._user_json(issue.user),
            "labels": [self._label_json(repo, name) for name in issue.labels],
            "state": issue.state,
            "locked": False,
            "assignee": self._user_json(issue.assignees[0]) if issue.assignees else None,
            "assignees": [self._user_json(a) for a in issue.assignees],
            "milestone": None,
            "comments": len(issue.comment_ids),
            "created_at": _ts(issue.created_at),
            "updated_at": _ts(issue.updated_at),
            "closed_at": _ts(issue.closed_at),
            "author_association": self._association(repo, issue.user),
            "type": None,
            "active_lock_reason": None,
            "sub_issues_summary": self._sub_issues_summary(issue),
            "issue_dependencies_summary": {
                "blocked_by": 0,
                "total_blocked_by": 0,
                "blocking": 0,
                "total_blocking": 0,
            },
            "body": issue.body,
            "closed_by": self._user_json(issue.closed_by) if issue.closed_by else None,
            "reactions": self._reactions(url),
            "timeline_url": f"{url}/timeline",
            "performed_via_github_app": None,
            "state_reason": issue.state_reason,
        }
        if issue.parent is not None:
            parent_repo = self._repo(issue.parent[0]).full_name
            data["parent_issue_url"] = f"{self.url}/repos/{parent_repo}/issues/{issue.parent[1]}"
        if issue.pull_request:  # how the issues API marks pull requests
            pulls = f"{api}/pulls/{issue.number}"
            data["draft"] = False
            data["pull_request"] = {
                "url": pulls,
                "html_url": data["html_url"],
                "diff_url": f"{data['html_url']}.diff",
                "patch_url": f"{data['html_url']}.patch",
                "merged_at": None,
            }
        return data

    def _sub_issues_summary(self, issue: _Issue) -> dict:
        subs = [self._issue(repo, number) for repo, number in issue.sub_issues]
        done = sum(1 for sub in subs if sub.state == "closed")
        return {"total": len(subs), "completed": done,
                "percent_completed": done * 100 // len(subs) if subs else 0}

    def _comment_json(self, c: _Comment) -> dict:
        repo = self._repo(c.repo)
        api = f"{self.url}/repos/{repo.full_name}/issues"
        url = f"{api}/comments/{c.id}"
        return {
            "url": url,
            "html_url": f"{self.root}/{repo.full_name}/issues/{c.number}#issuecomment-{c.id}",
            "issue_url": f"{api}/{c.number}",
            "id": c.id,
            "node_id": f"IC_fake{c.id}",
            "user": self._user_json(c.user),
            "created_at": _ts(c.created_at),
            "updated_at": _ts(c.updated_at),
            "author_association": self._association(repo, c.user),
            "body": c.body,
            "reactions": self._reactions(url),
            "performed_via_github_app": None,
        }

    _REPO_LINKS = {
        "forks_url": "/forks",
        "keys_url": "/keys{/key_id}",
        "collaborators_url": "/collaborators{/collaborator}",
        "teams_url": "/teams",
        "hooks_url": "/hooks",
        "issue_events_url": "/issues/events{/number}",
        "events_url": "/events",
        "assignees_url": "/assignees{/user}",
        "branches_url": "/branches{/branch}",
        "tags_url": "/tags",
        "blobs_url": "/git/blobs{/sha}",
        "git_tags_url": "/git/tags{/sha}",
        "git_refs_url": "/git/refs{/sha}",
        "trees_url": "/git/trees{/sha}",
        "statuses_url": "/statuses/{sha}",
        "languages_url": "/languages",
        "stargazers_url": "/stargazers",
        "contributors_url": "/contributors",
        "subscribers_url": "/subscribers",
        "subscription_url": "/subscription",
        "commits_url": "/commits{/sha}",
        "git_commits_url": "/git/commits{/sha}",
        "comments_url": "/comments{/number}",
        "issue_comment_url": "/issues/comments{/number}",
        "contents_url": "/contents/{+path}",
        "compare_url": "/compare/{base}...{head}",
        "merges_url": "/merges",
        "archive_url": "/{archive_format}{/ref}",
        "downloads_url": "/downloads",
        "issues_url": "/issues{/number}",
        "pulls_url": "/pulls{/number}",
        "milestones_url": "/milestones{/number}",
        "notifications_url": "/notifications{?since,all,participating}",
        "labels_url": "/labels{/name}",
        "releases_url": "/releases{/id}",
        "deployments_url": "/deployments",
    }

    def _repo_json(self, repo: _Repo) -> dict:
        api = f"{self.url}/repos/{repo.full_name}"
        web = f"{self.root}/{repo.full_name}"
        host = self.root.split("://", 1)[-1]
        opened = sum(1 for i in repo.issues.values() if i.state == "open")
        created = _ts(datetime(2024, 1, 1, tzinfo=UTC))
        return {
            "id": repo.id,
            "node_id": f"R_fake{repo.id}",
            "name": repo.full_name.split("/")[1],
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self._user_json(repo.owner),
            "html_url": web,
            "description": None,
            "fork": False,
            "url": api,
            **{key: f"{api}{suffix}" for key, suffix in self._REPO_LINKS.items()},
            "created_at": created,
            "updated_at": created,
            "pushed_at": created,
            "git_url": f"git://{host}/{repo.full_name}.git",
            "ssh_url": f"git@{host}:{repo.full_name}.git",
            "clone_url": f"{web}.git",
            "svn_url": web,
            "homepage": None,
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": None,
            "has_issues": True,
            "has_projects": False,
            "has_downloads": False,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": opened,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "private" if repo.private else "public",
            "forks": 0,
            "open_issues": opened,
            "watchers": 0,
            "default_branch": repo.default_branch,
            "permissions": {
                "admin": True,
                "maintain": True,
                "push": True,
                "triage": True,
                "pull": True,
            },
            "custom_properties": {},
            "network_count": 0,
            "subscribers_count": 0,
        }

    def _event_json(self, repo: _Repo, issue: _Issue, event: tuple) -> dict | None:
        kind, actor, when, extra = event
        if kind == "commented":
            return {
                **self._comment_json(self._comments[extra]),
                "event": "commented",
                "actor": self._user_json(actor),
            }
        if kind == "cross-referenced":
            src_repo, src_number = self._repo(extra[0]), extra[1]
            src = {
                **self._issue_json(src_repo, src_repo.issues[src_number]),
                "repository": self._repo_json(src_repo),
            }
            return {
                "actor": self._user_json(actor),
                "created_at": _ts(when),
                "updated_at": _ts(when),
                "source": {"type": "issue", "issue": src},
                "event": kind,
            }
        eid = abs(hash((issue.id, kind, when, extra))) % 10**9
        data = {
            "id": eid,
            "node_id": f"E_fake{eid}",
            "url": f"{self.url}/repos/{repo.full_name}/issues/events/{eid}",
            "actor": self._user_json(actor),
            "event": kind,
            "commit_id": None,
            "commit_url": None,
            "created_at": _ts(when),
            "performed_via_github_app": None,
        }
        if kind in ("labeled", "unlabeled"):
            data["label"] = {"name": extra, "color": "ededed"}
        if kind == "closed":
            data["state_reason"] = issue.state_reason
        return data

    def _file_json(self, repo: _Repo, ref: str, path: str, data: bytes | None) -> dict:
        api = f"{self.url}/repos/{repo.full_name}"
        web = f"{self.root}/{repo.full_name}"
        kind = "file" if data is not None else "dir"
        raw = data or b""
        sha = hashlib.sha1(b"blob %d\0" % len(raw) + raw if data is not None else path.encode())
        sha_hex = sha.hexdigest()
        git = f"{api}/git/{'blobs' if data is not None else 'trees'}/{sha_hex}"
        html = f"{web}/{'blob' if data is not None else 'tree'}/{ref}/{path}"
        self_url = f"{api}/contents/{quote(path)}?ref={quote(ref, safe='')}"
        out = {
            "type": kind,
            "size": len(raw),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha_hex,
            "url": self_url,
            "git_url": git,
            "html_url": html,
            "download_url": f"{web}/raw/{ref}/{path}" if data is not None else None,
            "_links": {"self": self_url, "git": git, "html": html},
        }
        if data is not None:
            # Like GitHub: base64 with line breaks; files over 1 MB come without content.
            too_big = len(data) > 1_000_000
            out["encoding"] = "none" if too_big else "base64"
            out["content"] = "" if too_big else base64.encodebytes(data).decode("ascii")
        return out

    def _installation_json(self, inst_id: int) -> dict:
        assert self._app is not None
        app_id, _, slug = self._app
        repos = self._installations[inst_id]
        account = self._repos[repos[0]].owner if repos and repos[0] in self._repos else "octo-org"
        created = _ts(datetime(2024, 1, 1, tzinfo=UTC))
        return {
            "id": inst_id,
            "account": self._user_json(account),
            "repository_selection": "selected",
            "access_tokens_url": f"{self.url}/app/installations/{inst_id}/access_tokens",
            "repositories_url": f"{self.url}/installation/repositories",
            "html_url": f"{self.root}/settings/installations/{inst_id}",
            "app_id": app_id,
            "app_slug": slug,
            "target_id": self._user_id(account),
            "target_type": "User",
            "permissions": {"issues": "write", "contents": "read", "metadata": "read"},
            "events": ["issues", "issue_comment"],
            "created_at": created,
            "updated_at": created,
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }

    # ---- internals: HTTP -----------------------------------------------------------------

    def _json(self, data: Any, status: int = 200, headers: dict | None = None) -> Response:
        resp = Response(json.dumps(data), status, mimetype="application/json")
        for key, value in (headers or {}).items():
            resp.headers[key] = value
        return resp

    def _error(self, status: int, message: str | None = None) -> Response:
        if message is None:
            message = "Bad credentials" if status == 401 else http.HTTPStatus(status).phrase
        return self._json(
            {"message": message, "documentation_url": DOCS, "status": str(status)}, status
        )

    def _page(self, items: list, wrap: str | None = None, extra: dict | None = None) -> Response:
        """One page of `items`, with GitHub's Link header (absolute URLs to the fake)."""
        try:
            per_page = max(1, min(100, int(request.args.get("per_page", 30))))
            page = max(1, int(request.args.get("page", 1)))
        except ValueError:
            per_page, page = 30, 1
        last = max(1, ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]

        def link(to: int, rel: str) -> str:
            args = {**request.args.to_dict(), "page": str(to)}
            return f'<{self.root}{request.path}?{urlencode(args)}>; rel="{rel}"'

        links = []
        if page > 1:
            links.append(link(page - 1, "prev"))
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links.append(link(1, "first"))
        body: Any = (
            chunk if wrap is None else {"total_count": len(items), wrap: chunk, **(extra or {})}
        )
        return self._json(body, headers={"Link": ", ".join(links)} if links else None)

    def _match(self, rules: list[_Rule], path: str) -> _Rule | None:
        for rule in rules:
            if rule.method in ("*", request.method) and rule.pattern.search(path):
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        rules.remove(rule)
                return rule
        return None

    def _api_path(self) -> str:
        return request.path[len(self.prefix) :] if self.prefix else request.path

    def _identity(self) -> tuple[str, Any] | None:
        """("user", login) for a PAT, ("installation", id), ("app", id) for a valid JWT."""
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("token", "bearer") or not credential:
            return None
        if credential in self.tokens:
            return ("user", self.user)
        held = self._installation_tokens.get(credential)
        if held is not None and held[1] > datetime.now(UTC):
            return ("installation", held[0])
        if scheme.lower() == "bearer" and self._app is not None:
            app_id, key, _ = self._app
            try:
                claims = jwt.decode(
                    credential,
                    key,
                    algorithms=["RS256"],
                    leeway=60,
                    options={"require": ["iat", "exp", "iss"]},
                )
            except jwt.PyJWTError:
                return None
            if str(claims["iss"]) == str(app_id):
                return ("app", app_id)
        return None

    def _require(self, *kinds: str) -> None:
        if g.identity[0] not in kinds:
            if g.identity[0] == "app":
                abort(self._error(401, "A JSON web token could not be decoded"))
            abort(self._error(403, "Resource not accessible by integration"))

    def _actor(self) -> str:
        kind, value = g.identity
        if kind == "installation":
            assert self._app is not None
            return f"{self._app[2]}[bot]"
        return value if kind == "user" else "app"

    def _visible(self, owner: str, name: str) -> _Repo:
        repo = self._repos.get(f"{owner}/{name}".lower())
        kind, value = g.identity
        if (
            kind == "installation"
            and repo
            and repo.full_name.lower() not in self._installations.get(value, [])
        ):
            repo = None  # an installation sees only its repositories
        if repo is None:
            abort(self._error(404, "Not Found"))
        return repo

    def _visible_issue(self, owner: str, name: str, number: int) -> tuple[_Repo, _Issue]:
        repo = self._visible(owner, name)
        issue = repo.issues.get(number)
        if issue is None:
            abort(self._error(404, "Not Found"))
        return repo, issue

    def _body(self) -> Any:
        data = request.get_json(silent=True)
        if data is None and request.data:
            abort(self._error(400, "Problems parsing JSON"))
        return data

    def _build_app(self) -> Flask:
        app = Flask("fake_github")
        fake = self

        @app.before_request
        def faults_and_auth() -> Response | None:
            path = fake._api_path()
            with fake._lock:
                delay = fake._match(fake._delays, path)
            if delay:
                time.sleep(delay.seconds)  # outside the lock: other requests go on
            with fake._lock:
                rule = fake._match(fake._faults, path)
                if rule:
                    body = rule.body
                    if body is None:
                        body = fake._error(rule.status).get_json()
                    return fake._json(body, rule.status, rule.headers)
                if fake.prefix and not request.path.startswith(fake.prefix + "/"):
                    return fake._error(404)
                g.identity = fake._identity()
                if g.identity is None:
                    return fake._error(401)
            return None

        @app.after_request
        def log_and_rate_headers(resp: Response) -> Response:
            for key, value in {
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": "4999",
                "X-RateLimit-Used": "1",
                "X-RateLimit-Reset": str(int(time.time()) + 3600),
                "X-RateLimit-Resource": "core",
                "X-GitHub-Media-Type": "github.v3; format=json",
            }.items():
                resp.headers.setdefault(key, value)
            with fake._lock:
                fake.requests.append((request.method, fake._api_path(), resp.status_code))
            return resp

        @app.errorhandler(404)
        @app.errorhandler(405)
        def not_found(exc: Exception) -> Response:
            return fake._error(404)

        api = fake.prefix

        def route(rule: str, methods: tuple[str, ...] = ("GET",), **options: Any):
            return app.route(f"{api}{rule}", methods=list(methods), **options)

        # -- repositories and issues --

        @route("/repos/<owner>/<name>")
        def get_repo(owner: str, name: str) -> Response:
            with fake._lock:
                fake._require("user", "installation")
                return fake._json(fake._repo_json(fake._visible(owner, name)))

        @route("/repos/<owner>/<name>/issues")
        def list_issues(owner: str, name: str) -> Response:
            with fake._lock:
                fake._require("user", "installation")
                repo = fake._visible(owner, name)
                state = request.args.get("state", "open")
                since = request.args.get("since")
                issues = [i for i in repo.issues.values() if state == "all" or i.state == state]
                if since:
                    issues = [i for i in issues if (_ts(i.updated_at) or "") >= since]
                issues.sort(key=lambda i: i.number, reverse=True)  # newest first, like GitHub
                return fake._page([fake._issue_json(repo, i) for i in issues])

        @route("/repos/<owner>/<name>/issues/<int:number>", ("GET", "PATCH"))
        def issue(owner: str, name: str, number: int) -> Response:
            with fake._lock:
                fake._require("user", "installation")
                repo, issue = fake._visible_issue(owner, name, number)
                if request.method == "PATCH":
                    data = fake._body() or {}
                    for key in ("title", "body"):
                        if key in data:
                            setattr(issue, key, data[key] or "")
                    if "assignees" in data:
                        issue.assignees = list(data["assignees"])
                    if "labels" in data:
                        issue.labels = []
                        for label in data["labels"]:
                            fake._add_label(repo, issue, label, fake._actor())
                    if data.get("state") == "closed" and issue.state != "closed":
                        fake._close(issue, data.get("state_reason"), fake._actor())
                    elif data.get("state") == "open" and issue.state != "open":
                        fake._reopen(issue, fake._actor())
                    elif "state_reason" in data:
                        issue.state_reason = data["state_reason"]
                    issue.updated_at = _now()
                return fake._json(fake._issue_json(repo, issue))

        @route("/repos/<owner>/<name>/issues/<int:number>/comments", ("GET", "POST"))
        def issue_comments(owner: str, name: str, number: int) -> Response:
            with fake._lock:
                fake._require("user", "installation")
                repo, issue = fake._visible_issue(owner, name, number)
                if request.method == "POST":
                    data = fake._body() or {}
                    if not isinstance(data.get("body"), str):
                        return fake._error(422, "Validation Failed")
                    comment = fake._new_comment(repo, issue, data["body"], fake._actor())
                    return fake._json(fake._comment_json(comment), 201)
                return fake._page(
                    [fake._comment_json(fake._comments[i]) for i in issue.comment_ids]
                )

        @route("/repos/<owner>/<name>/issues/comments/<int:cid>", ("GET", "PATCH", "DELETE"))
        def comment(owner: str, name: str, cid: int) -> Response:
            with fake._lock:
                fake._require("user", "installation")
                repo = fake._visible(owner, name)
                c = fake._comments.get(cid)
                if c is None or c.repo != repo.full_name.lower():
                    return fake._error(404)
                if request.method == "DELETE":
                    del fake._comments[cid]
                    for issue in repo.issues.values():
                        if cid in issue.comment_ids:
                            issue.comment_ids.remove(cid)
                    return Response(status=204)
                if request.method == "PATCH":
                    data = fake._body() or {}
                    if not isinstance(data.get("body"), str):
                        return fake._error(422, "Validation Failed")
                    c.body, c.updated_at = data["body"], _now()
                return fake._json(fake._comment_json(c))

        @route("/repos/<owner>/<name>/issues/<int:number>/labels", ("POST",))
        def add_labels(owner: str, name: str, number: int) -> Response:
            with fake._lock:
                fake._require("user", "installation")
                repo, issue = fake._visible_issue(owner, name, number)
                data = fake._body()
                names = data.get("labels") if isinstance(data, dict) else data  # both accepted
                if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                    return fake._error(422, "Validation Failed")
                for label in names:
                    fake._add_label(repo, issue, label, fake._actor())
                return fake._json([fake._label_json(repo, n) for n in issue.labels])

        @route("/repos/<owner>/<name>/issues/<int:number>/labels/<path:label>", ("DELETE",))
        def remove_label(owner: str, name: str, number: int, label: str) -> Response:
            with fake._lock:
                fake._require("user", "installation")
                repo, issue = fake._visible_issue(owner, name, number)
                present = [x for x in issue.labels if x.lower() == label.lower()]
                if not present:
                    return fake._error(404, "Label does not exist")
                issue.labels.remove(present[0])
                issue.updated_at = _now()
                issue.events.append(("unlabeled", fake._actor(), _now(), present[0]))
                return fake._json([fake._label_json(repo, n) for n in issue.labels])

        @route("/repos/<owner>/<name>/issues/<int:number>/timeline")
        def timeline(owner: str, name: str, number: int) -> Response:
            with fake._lock:
                fake._require("user", "installation")
                repo, issue = fake._visible_issue(owner, name, number)
                events = [fake._event_json(repo, issue, e) for e in issue.events]
                return fake._page([e for e in events if e is not None])

        @route("/repos/<owner>/<name>/issues/<int:number>/sub_issues")
        def sub_issues(owner: str, name: str, number: int) -> Response:
            with fake._lock:
                fake._require("user", "installation")
                _repo, issue = fake._visible_issue(owner, name, number)
                subs = [(fake._repo(r), fake._issue(r, n)) for r, n in issue.sub_issues]
                return fake._page([fake._issue_json(r, i) for r, i in subs])

        @route("/repos/<owner>/<name>/contents/", defaults={"path": ""})
        @route("/repos/<owner>/<name>/contents/<path:path>")
        def contents(owner: str, name: str, path: str) -> Response:
            with fake._lock:
                fake._require("user", "installation")
                repo = fake._visible(owner, name)
                ref = request.args.get("ref") or repo.default_branch
                files = {p: d for (r, p), d in repo.files.items() if r == ref}
                if not files and ref != repo.default_branch:
                    return fake._error(404, f"No commit found for the ref {ref}")
                path = path.strip("/")
                if path in files:
                    return fake._json(fake._file_json(repo, ref, path, files[path]))
                prefix = f"{path}/" if path else ""
                children: dict[str, bytes | None] = {}
                for p, data in files.items():
                    if p.startswith(prefix):
                        head, sep, _ = p[len(prefix) :].partition("/")
                        children[prefix + head] = None if sep else data
                if not children:
                    return fake._error(404)
                return fake._json(
                    [fake._file_json(repo, ref, p, d) for p, d in sorted(children.items())]
                )

        @route("/repos/<owner>/<name>/collaborators/<user>/permission")
        def permission(owner: str, name: str, user: str) -> Response:
            with fake._lock:
                fake._require("user", "installation")
                repo = fake._visible(owner, name)
                role = repo.permissions.get(user.lower()) or ("none" if repo.private else "read")
                return fake._json(
                    {
                        "permission": WRITE_ROLES.get(role, role),  # the legacy field
                        "role_name": role,
                        "user": fake._user_json(user),
                    }
                )

        # -- GitHub App --

        @route("/repos/<owner>/<name>/installation")
        def repo_installation(owner: str, name: str) -> Response:
            with fake._lock:
                fake._require("app")
                full = f"{owner}/{name}".lower()
                for inst_id, repos in fake._installations.items():
                    if full in repos:
                        return fake._json(fake._installation_json(inst_id))
                return fake._error(404)

        @route("/app/installations")
        def installations() -> Response:
            with fake._lock:
                fake._require("app")
                return fake._page([fake._installation_json(i) for i in sorted(fake._installations)])

        @route("/app/installations/<int:inst_id>")
        def installation(inst_id: int) -> Response:
            with fake._lock:
                fake._require("app")
                if inst_id not in fake._installations:
                    return fake._error(404)
                return fake._json(fake._installation_json(inst_id))

        @route("/app/installations/<int:inst_id>/access_tokens", ("POST",))
        def access_token(inst_id: int) -> Response:
            with fake._lock:
                fake._require("app")
                if inst_id not in fake._installations:
                    return fake._error(404)
                token = f"ghs_fake{next(fake._ids)}"
                expires = _now() + timedelta(hours=1)
                fake._installation_tokens[token] = (inst_id, expires)
                return fake._json(
                    {
                        "token": token,
                        "expires_at": _ts(expires),
                        "permissions": {"issues": "write", "contents": "read", "metadata": "read"},
                        "repository_selection": "selected",
                    },
                    201,
                )

        @route("/installation/repositories")
        def installation_repos() -> Response:
            with fake._lock:
                fake._require("installation")
                names = fake._installations.get(g.identity[1], [])
                repos = [fake._repo_json(fake._repos[n]) for n in names if n in fake._repos]
                return fake._page(repos, "repositories", {"repository_selection": "selected"})

        # -- the authenticated user --

        @route("/user")
        def user() -> Response:
            with fake._lock:
                fake._require("user")
                return fake._json(fake._user_json(fake.user))

        @route("/user/repos")
        def user_repos() -> Response:
            with fake._lock:
                fake._require("user")
                repos = sorted(fake._repos.values(), key=lambda r: r.full_name.lower())
                return fake._page([fake._repo_json(r) for r in repos])

        @route("/rate_limit")
        def rate_limit() -> Response:
            core = {"limit": 5000, "used": 1, "remaining": 4999, "reset": int(time.time()) + 3600}
            return fake._json({"resources": {"core": core}, "rate": core})

        return app
