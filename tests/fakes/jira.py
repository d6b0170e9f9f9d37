"""A fake Jira (Cloud or Data Center/Server) and Confluence REST server for tests.

It answers exactly the calls the `jira` library and connector/confluence.py make, with the
shapes of the real REST v2 API (see ../shared/reference/api-shapes.md §3b, §4): serverInfo
with versionNumbers and deploymentType, issue JSON whose `self` uses the numeric id (served by
id and by key), 201 for new comments, 204 for issue PUT and transitions, JSON errors. Cloud
checks basic auth (email:API token) and Server a bearer PAT on every call (serverInfo alone
also answers a request without credentials, as real Jira does). Cloud searches through
`search/jql` with page tokens; its old `search` answers 410 as on real Cloud. Server searches
`search` by startAt.

    with FakeJira("Cloud") as fake:
        fake.add_project("OPS")
        key = fake.add_issue("OPS", "DB outage", "h1. What happened", status="Done")
        JiraTracker(fake.url, **fake.credentials()).fetch_incident(...)

State is in memory behind one lock; the server is threaded. Faults: `fail()` answers a
matching request with an error status, `delay()` sleeps before answering.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask, Response, jsonify, request

from tests.fakes.server import LocalServer

API = "/rest/api/2"

# name -> (id, category key, category id, category name, colour)
STATUSES: dict[str, tuple[str, str, int, str, str]] = {
    "Open": ("1", "new", 2, "To Do", "blue-gray"),
    "To Do": ("10000", "new", 2, "To Do", "blue-gray"),
    "In Progress": ("3", "indeterminate", 4, "In Progress", "yellow"),
    "Resolved": ("5", "done", 3, "Done", "green"),
    "Closed": ("6", "done", 3, "Done", "green"),
    "Done": ("10002", "done", 3, "Done", "green"),
}
# Workflow: (id, name, target status, offered when the issue's category is one of these)
WORKFLOW: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("11", "To Do", "To Do", ("new", "indeterminate")),
    ("21", "In Progress", "In Progress", ("new",)),
    ("31", "Done", "Done", ("new", "indeterminate")),
    ("41", "Reopen", "Open", ("done",)),
)
ISSUE_TYPES = {
    "Incident": "10100",
    "Postmortem": "10101",
    "Post-incident review": "10102",
    "Task": "10003",
    "Bug": "10004",
    "Story": "10001",
}
LINK_TYPES = {  # name -> (id, inward, outward)
    "Relates": ("10003", "relates to", "relates to"),
    "Blocks": ("10000", "is blocked by", "blocks"),
    "Duplicate": ("10002", "is duplicated by", "duplicates"),
    "Postmortem": ("10100", "is postmortem of", "has postmortem"),
}
PRIORITIES = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}
SYSTEM_FIELDS = {  # id -> (name, clause names)
    "summary": ("Summary", ["summary"]),
    "description": ("Description", ["description"]),
    "labels": ("Labels", ["labels"]),
    "status": ("Status", ["status"]),
    "resolution": ("Resolution", ["resolution"]),
    "resolutiondate": ("Resolved", ["resolutiondate", "resolved"]),
    "priority": ("Priority", ["priority"]),
    "issuetype": ("Issue Type", ["issuetype", "type"]),
    "project": ("Project", ["project"]),
    "reporter": ("Reporter", ["reporter"]),
    "assignee": ("Assignee", ["assignee"]),
    "created": ("Created", ["created", "createdDate"]),
    "updated": ("Updated", ["updated", "updatedDate"]),
    "issuelinks": ("Linked Issues", ["issueLink"]),
    "comment": ("Comment", ["comment"]),
}
BOT = "pmguard-bot"
ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(when: datetime | None) -> str | None:
    if when is None:
        return None
    return (
        when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"
    )


def _error(status: int, *messages: str, errors: dict | None = None) -> Response:
    response = jsonify({"errorMessages": list(messages), "errors": errors or {}})
    response.status_code = status
    return response


@dataclass
class _Issue:
    id: str
    key: str
    project: str
    summary: str
    description: Any
    issue_type: str
    labels: list[str]
    status: str
    reporter: str
    assignee: str | None = None
    priority: str = "Medium"
    created: datetime = field(default_factory=_now)
    updated: datetime = field(default_factory=_now)
    resolved: datetime | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    comments: list[dict] = field(default_factory=list)
    remote: list[dict] = field(default_factory=list)


@dataclass
class _Rule:
    method: str
    pattern: re.Pattern
    remaining: int
    status: int = 500
    headers: dict = field(default_factory=dict)
    body: Any = None
    seconds: float = 0.0


class FakeJira(LocalServer):
    """In-memory Jira + Confluence served on 127.0.0.1 (a free port)."""

    def __init__(
        self,
        deployment: str = "Cloud",
        *,
        email: str = "pmguard@example.com",
        token: str = "cloud-api-token-s3cret",
        pat: str = "dc-personal-access-token-s3cret",
        time_zone: str = "UTC",
    ) -> None:
        super().__init__()
        if deployment not in ("Cloud", "Server"):
            raise ValueError("deployment is 'Cloud' or 'Server'")
        self.deployment = deployment
        self.cloud = deployment == "Cloud"
        self.email, self.token, self.pat = email, token, pat
        self.lock = threading.RLock()
        self.requests: list[dict] = []
        self._ids = itertools.count(10001)
        self._comment_ids = itertools.count(10100)
        self._link_ids = itertools.count(20000)
        self._projects: dict[str, dict] = {}
        self._issues: dict[str, _Issue] = {}  # by key
        self._moved: dict[str, str] = {}  # old key -> new key, as Jira answers a moved issue
        self._users: dict[str, dict] = {}
        self._links: list[tuple[str, str, str, str]] = []  # (id, type, outward from, to)
        self._fields: dict[str, str] = {}  # custom field id -> name
        self._grants: set[tuple[str, str, str]] = set()
        self._pages: dict[str, dict] = {}
        self._workflow = list(WORKFLOW)
        self._types = dict(ISSUE_TYPES)
        self._link_types = dict(LINK_TYPES)
        self._rules: list[_Rule] = []
        self.add_user(BOT, "Postmortem Guard", time_zone=time_zone)
        self.app = self._build_app()
        self.url = ""

    # ---- lifecycle

    def started(self, root: str) -> None:
        self.url = root

    def credentials(self) -> dict[str, str]:
        """Keyword arguments for JiraTracker: email + token on Cloud, pat on Server."""
        return {"email": self.email, "token": self.token} if self.cloud else {"pat": self.pat}

    # ---- seeding

    def add_user(self, name: str, display_name: str | None = None, *, time_zone: str = "UTC"):
        with self.lock:
            if name not in self._users:
                digest = hashlib.sha1(name.encode()).hexdigest()
                self._users[name] = {
                    "name": name,
                    "display": display_name or name.replace(".", " ").title(),
                    "account_id": f"5b10{digest[:20]}",
                    "key": f"JIRAUSER{10000 + len(self._users)}",
                    "tz": time_zone,
                }
            return self.user_id(name)

    def user_id(self, name: str) -> str:
        """How the API names a user: accountId on Cloud, username on Server."""
        if name not in self._users:
            self.add_user(name)
        user = self._users[name]
        return user["account_id"] if self.cloud else user["name"]

    def user_key(self, name: str) -> str:
        """A Data Center user key (JIRAUSER…), as Confluence DC storage names users."""
        return self._users[name]["key"]

    def display_name(self, name: str) -> str:
        return self._users[name]["display"]

    def add_project(self, key: str, name: str | None = None) -> str:
        with self.lock:
            self._projects.setdefault(
                key, {"id": str(10000 + len(self._projects)), "key": key, "name": name or key}
            )
            return key

    def add_issue(
        self,
        project: str,
        summary: str,
        description: Any = "",
        issue_type: str = "Incident",
        labels: tuple[str, ...] = (),
        status: str = "Open",
        reporter: str = "alice",
        assignee: str | None = None,
    ) -> str:
        with self.lock:
            self.add_project(project)
            for person in (reporter, assignee):
                if person:
                    self.add_user(person)
            self._types.setdefault(issue_type, str(10200 + len(self._types)))
            number = 1 + sum(1 for i in self._issues.values() if i.project == project)
            key = f"{project}-{number}"
            self._issues[key] = _Issue(
                id=str(next(self._ids)),
                key=key,
                project=project,
                summary=summary,
                description=description,
                issue_type=issue_type,
                labels=list(labels),
                status="Open",
                reporter=reporter,
                assignee=assignee,
            )
        if status != "Open":
            self.transition(key, status)
        return key

    def move_issue(self, key: str, project: str) -> str:
        """Move an issue to another project; its old key still answers, with the new key."""
        with self.lock:
            self.add_project(project)
            issue = self._issues.pop(key)
            number = 1 + sum(1 for i in self._issues.values() if i.project == project)
            issue.key, issue.project = f"{project}-{number}", project
            self._issues[issue.key] = issue
            self._moved[key] = issue.key
            return issue.key

    def add_comment(self, key: str, body: str, author: str = "alice") -> str:
        with self.lock:
            self.add_user(author)
            issue = self._issue(key)
            comment = {
                "id": str(next(self._comment_ids)),
                "author": author,
                "update_author": author,
                "body": body,
                "created": _now(),
                "updated": _now(),
            }
            issue.comments.append(comment)
            return comment["id"]

    def transition(self, key: str, status: str, *, at: datetime | None = None) -> None:
        """Move an issue to a status (Done sets a resolution; leaving done clears it)."""
        with self.lock:
            self._set_status(self._issue(key), status, at)

    def link(self, from_key: str, to_key: str, type_name: str = "Relates") -> str:
        with self.lock:
            for key in (from_key, to_key):
                self._issue(key)  # KeyError for an unknown issue
            if type_name not in self._link_types:
                tid = str(10200 + len(self._link_types))
                self._link_types[type_name] = (tid, type_name.lower(), type_name.lower())
            link_id = str(next(self._link_ids))
            self._links.append((link_id, type_name, from_key, to_key))
            return link_id

    def add_remote_link(
        self,
        key: str,
        url: str,
        title: str,
        *,
        relationship: str | None = None,
        global_id: str | None = None,
        application: dict | None = None,
    ) -> int:
        with self.lock:
            issue = self._issue(key)
            link_id = next(self._link_ids)
            issue.remote.append(
                {
                    "id": link_id,
                    "globalId": global_id or f"system={url}",
                    "application": application or {},
                    "relationship": relationship,
                    "object": {"url": url, "title": title, "icon": {}, "status": {}},
                }
            )
            return link_id

    def add_confluence_page(
        self, page_id: str | int, title: str, storage_xhtml: str, *, space: str = "ENG"
    ) -> str:
        """Store a page; returns its Cloud-style URL (/wiki/spaces/…/pages/<id>/<title>)."""
        with self.lock:
            self._pages[str(page_id)] = {
                "id": str(page_id),
                "title": title,
                "storage": storage_xhtml,
                "space": space,
                "version": 1 + self._pages.get(str(page_id), {}).get("version", 0),
                "when": _now(),
            }
        return self.page_url(page_id)

    def page_url(self, page_id: str | int) -> str:
        page = self._pages[str(page_id)]
        slug = re.sub(r"\s+", "+", page["title"])
        return f"{self.url}/wiki/spaces/{page['space']}/pages/{page_id}/{slug}"

    def set_field(self, key: str, field_id: str, value: Any, *, name: str | None = None) -> None:
        """Set a field; custom fields are registered in GET field under `name`."""
        with self.lock:
            issue = self._issue(key)
            if field_id == "priority":
                issue.priority = value
            elif field_id == "assignee":
                issue.assignee = value
                if value:
                    self.add_user(value)
            elif field_id in ("summary", "description"):
                setattr(issue, field_id, value)
            else:
                self._fields.setdefault(field_id, name or field_id)
                issue.custom[field_id] = value
            issue.updated = _now()

    def grant(self, project: str, user: str, permission: str = "EDIT_ISSUES") -> None:
        with self.lock:
            self.add_user(user)
            self._grants.add((project, user, permission))

    def remove_transition(self, name: str) -> None:
        with self.lock:
            self._workflow = [t for t in self._workflow if t[1] != name]

    # ---- faults

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int = 500,
        times: int = 1,
        headers: dict | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next `times` matching requests (method or "*") with `status`."""
        with self.lock:
            self._rules.append(
                _Rule(method.upper(), re.compile(path_regex), times, status, headers or {}, body)
            )

    def delay(self, method: str, path_regex: str, seconds: float, times: int = 1) -> None:
        with self.lock:
            self._rules.append(
                _Rule(method.upper(), re.compile(path_regex), times, seconds=seconds, status=0)
            )

    # ---- reading state

    def issue(self, key: str) -> dict:
        """The issue's JSON as GET issue serves it."""
        with self.lock:
            return self._issue_json(self._issue(key))

    def comments(self, key: str) -> list[dict]:
        with self.lock:
            return [self._comment_json(self._issue(key), c) for c in self._issue(key).comments]

    def labels(self, key: str) -> list[str]:
        with self.lock:
            return list(self._issue(key).labels)

    def status(self, key: str) -> str:
        with self.lock:
            return self._issue(key).status

    def calls(self, method: str, path_regex: str) -> list[dict]:
        """Logged requests matching a method and a path pattern."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r["method"] == method.upper() and re.search(path_regex, r["path"])
            ]

    # ---- internals: model

    def _issue(self, id_or_key: str) -> _Issue:
        issue = self._issues.get(self._moved.get(str(id_or_key), str(id_or_key)))
        if issue is None:
            issue = next((i for i in self._issues.values() if i.id == str(id_or_key)), None)
        if issue is None:
            raise KeyError(id_or_key)
        return issue

    def _find(self, id_or_key: str) -> _Issue | None:
        try:
            return self._issue(id_or_key)
        except KeyError:
            return None

    def _set_status(self, issue: _Issue, status: str, at: datetime | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        done = STATUSES[status][1] == "done"
        was_done = STATUSES[issue.status][1] == "done"
        issue.status = status
        if done and not was_done:
            issue.resolved = at or _now()
        elif not done:
            issue.resolved = None
        issue.updated = at or _now()

    def _user_json(self, name: str | None) -> dict | None:
        if not name:
            return None
        user = self._users[name]
        avatars = {
            s: f"{self.url}/secure/useravatar?size={s}"
            for s in ("48x48", "24x24", "16x16", "32x32")
        }
        if self.cloud:
            return {
                "self": f"{self.url}{API}/user?accountId={user['account_id']}",
                "accountId": user["account_id"],
                "avatarUrls": avatars,
                "displayName": user["display"],
                "active": True,
                "timeZone": user["tz"],
                "accountType": "atlassian",
            }
        return {
            "self": f"{self.url}{API}/user?username={user['name']}",
            "name": user["name"],
            "key": user["key"],
            "emailAddress": f"{user['name']}@example.com",
            "avatarUrls": avatars,
            "displayName": user["display"],
            "active": True,
            "timeZone": user["tz"],
        }

    def _user_by_id(self, ident: str) -> str | None:
        for name, user in self._users.items():
            if ident in (user["account_id"] if self.cloud else user["name"], user["key"]):
                return name
        return None

    def _status_json(self, status: str) -> dict:
        sid, cat_key, cat_id, cat_name, colour = STATUSES[status]
        return {
            "self": f"{self.url}{API}/status/{sid}",
            "description": "",
            "iconUrl": f"{self.url}/",
            "name": status,
            "id": sid,
            "statusCategory": {
                "self": f"{self.url}{API}/statuscategory/{cat_id}",
                "id": cat_id,
                "key": cat_key,
                "colorName": colour,
                "name": cat_name,
            },
        }

    def _type_json(self, name: str) -> dict:
        tid = self._types[name]
        return {
            "self": f"{self.url}{API}/issuetype/{tid}",
            "id": tid,
            "description": "",
            "iconUrl": f"{self.url}/secure/viewavatar?avatarId={tid}&avatarType=issuetype",
            "name": name,
            "subtask": False,
        }

    def _priority_json(self, name: str) -> dict:
        pid = PRIORITIES.get(name, "3")
        return {
            "self": f"{self.url}{API}/priority/{pid}",
            "iconUrl": f"{self.url}/images/icons/priorities/{name.lower()}.svg",
            "name": name,
            "id": pid,
        }

    def _project_json(self, key: str) -> dict:
        project = self._projects[key]
        return {
            "self": f"{self.url}{API}/project/{project['id']}",
            "id": project["id"],
            "key": key,
            "name": project["name"],
            "projectTypeKey": "software",
            "simplified": False,
            "avatarUrls": {"48x48": f"{self.url}/secure/projectavatar?avatarId=10324"},
        }

    def _linked_issue_json(self, issue: _Issue) -> dict:
        return {
            "id": issue.id,
            "key": issue.key,
            "self": f"{self.url}{API}/issue/{issue.id}",
            "fields": {
                "summary": issue.summary,
                "status": self._status_json(issue.status),
                "priority": self._priority_json(issue.priority),
                "issuetype": self._type_json(issue.issue_type),
            },
        }

    def _links_json(self, issue: _Issue) -> list[dict]:
        out = []
        for link_id, type_name, source, target in self._links:
            if issue.key not in (source, target):
                continue
            tid, inward, outward = self._link_types[type_name]
            entry = {
                "id": link_id,
                "self": f"{self.url}{API}/issueLink/{link_id}",
                "type": {
                    "id": tid,
                    "name": type_name,
                    "inward": inward,
                    "outward": outward,
                    "self": f"{self.url}{API}/issueLinkType/{tid}",
                },
            }
            if issue.key == source:
                entry["outwardIssue"] = self._linked_issue_json(self._issue(target))
            else:
                entry["inwardIssue"] = self._linked_issue_json(self._issue(source))
            out.append(entry)
        return out

    def _comment_json(self, issue: _Issue, c: dict) -> dict:
        data = {
            "self": f"{self.url}{API}/issue/{issue.id}/comment/{c['id']}",
            "id": c["id"],
            "author": self._user_json(c["author"]),
            "body": c["body"],
            "updateAuthor": self._user_json(c["update_author"]),
            "created": _stamp(c["created"]),
            "updated": _stamp(c["updated"]),
        }
        if self.cloud:
            data["jsdPublic"] = True
        return data

    def _issue_json(self, issue: _Issue, only: set[str] | None = None) -> dict:
        done = STATUSES[issue.status][1] == "done"
        comments = [self._comment_json(issue, c) for c in issue.comments]
        fields: dict[str, Any] = {
            "aggregateprogress": {"progress": 0, "total": 0},
            "aggregatetimeestimate": None,
            "aggregatetimeoriginalestimate": None,
            "aggregatetimespent": None,
            "assignee": self._user_json(issue.assignee),
            "attachment": [],
            "comment": {
                "comments": comments,
                "maxResults": len(comments),
                "startAt": 0,
                "total": len(comments),
            },
            "components": [],
            "created": _stamp(issue.created),
            "creator": self._user_json(issue.reporter),
            "description": issue.description if issue.description != "" else None,
            "duedate": None,
            "environment": None,
            "fixVersions": [],
            "issuelinks": self._links_json(issue),
            "issuetype": self._type_json(issue.issue_type),
            "labels": list(issue.labels),
            "lastViewed": None,
            "priority": self._priority_json(issue.priority),
            "progress": {"progress": 0, "total": 0},
            "project": self._project_json(issue.project),
            "reporter": self._user_json(issue.reporter),
            "resolution": (
                {
                    "self": f"{self.url}{API}/resolution/10000",
                    "id": "10000",
                    "description": "Work has been completed on this issue.",
                    "name": "Done",
                }
                if done
                else None
            ),
            "resolutiondate": _stamp(issue.resolved),
            "security": None,
            "status": self._status_json(issue.status),
            "subtasks": [],
            "summary": issue.summary,
            "timeestimate": None,
            "timeoriginalestimate": None,
            "timespent": None,
            "timetracking": {},
            "updated": _stamp(issue.updated),
            "versions": [],
            "votes": {
                "self": f"{self.url}{API}/issue/{issue.key}/votes",
                "votes": 0,
                "hasVoted": False,
            },
            "watches": {
                "self": f"{self.url}{API}/issue/{issue.key}/watchers",
                "watchCount": 1,
                "isWatching": True,
            },
            "worklog": {"startAt": 0, "maxResults": 20, "total": 0, "worklogs": []},
            "workratio": -1,
        }
        if self.cloud:
            fields["statuscategorychangedate"] = _stamp(issue.updated)
        for field_id in self._fields:
            fields[field_id] = issue.custom.get(field_id)
        if only:
            fields = {k: v for k, v in fields.items() if k in only}
        return {
            "expand": ISSUE_EXPAND,
            "id": issue.id,
            "self": f"{self.url}{API}/issue/{issue.id}",
            "key": issue.key,
            "fields": fields,
        }

    # ---- internals: HTTP

    def _authorised(self) -> bool:
        header = request.headers.get("Authorization", "")
        if self.cloud:
            expected = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
            return header == f"Basic {expected}"
        return header == f"Bearer {self.pat}"

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        fake = self

        @app.before_request
        def _gate():
            body = request.get_json(silent=True) if request.data else None
            with fake.lock:
                fake.requests.append(
                    {
                        "method": request.method,
                        "path": request.path,
                        "args": request.args.to_dict(flat=False),
                        "json": body,
                    }
                )
                rule = next(
                    (
                        r
                        for r in fake._rules
                        if r.remaining > 0
                        and r.method in ("*", request.method)
                        and r.pattern.search(request.path)
                    ),
                    None,
                )
                if rule is not None:
                    rule.remaining -= 1
            if rule is not None and rule.seconds:
                time.sleep(rule.seconds)
            elif rule is not None:
                payload = (
                    rule.body
                    if rule.body is not None
                    else {
                        "errorMessages": [f"Injected failure {rule.status}"],
                        "errors": {},
                    }
                )
                response = jsonify(payload)
                response.status_code = rule.status
                response.headers.update(rule.headers)
                return response
            # serverInfo is public in real Jira, but credentials that are sent are checked.
            anonymous_ok = (
                request.path == f"{API}/serverInfo" and "Authorization" not in request.headers
            )
            if not anonymous_ok and not fake._authorised():
                return _error(
                    401,
                    "You are not authenticated. Authentication required to perform this operation.",
                )
            return None

        app.add_url_rule(f"{API}/serverInfo", view_func=self._server_info)
        app.add_url_rule(f"{API}/myself", view_func=self._myself)
        app.add_url_rule(f"{API}/issue/<ident>", view_func=self._get_issue, methods=["GET"])
        app.add_url_rule(f"{API}/issue/<ident>", "put_issue", self._put_issue, methods=["PUT"])
        app.add_url_rule(
            f"{API}/issue/<ident>/comment", view_func=self._comments, methods=["GET", "POST"]
        )
        app.add_url_rule(
            f"{API}/issue/<ident>/comment/<cid>", view_func=self._comment,
            methods=["GET", "PUT", "DELETE"],
        )
        app.add_url_rule(f"{API}/issue/<ident>/remotelink", view_func=self._remote_links)
        app.add_url_rule(
            f"{API}/issue/<ident>/transitions", view_func=self._transitions, methods=["GET", "POST"]
        )
        app.add_url_rule(f"{API}/search", view_func=self._search, methods=["GET", "POST"])
        app.add_url_rule(f"{API}/search/jql", view_func=self._search_jql, methods=["GET", "POST"])
        app.add_url_rule(f"{API}/field", view_func=self._field_list)
        app.add_url_rule(f"{API}/user/permission/search", view_func=self._permission_search)
        app.add_url_rule(f"{API}/project", view_func=self._project_list)
        app.add_url_rule("/wiki/rest/api/content/<page_id>", view_func=self._page)
        app.add_url_rule("/wiki/rest/api/content", view_func=self._page_search)
        app.add_url_rule("/wiki/rest/api/user", view_func=self._wiki_user)
        return app

    def _server_info(self):
        if self.cloud:
            version, numbers, build = "1001.0.0-SNAPSHOT", [1001, 0, 0], 100246
        else:
            version, numbers, build = "9.12.2", [9, 12, 2], 9120002
        return jsonify(
            {
                "baseUrl": self.url,
                "version": version,
                "versionNumbers": numbers,
                "deploymentType": self.deployment,
                "buildNumber": build,
                "buildDate": "2024-01-01T00:00:00.000+0000",
                "serverTime": _stamp(_now()),
                "scmInfo": "0" * 40,
                "serverTitle": "Jira",
            }
        )

    def _myself(self):
        with self.lock:
            return jsonify(self._user_json(BOT))

    def _get_issue(self, ident: str):
        with self.lock:
            issue = self._find(ident)
            if issue is None:
                return _error(404, "Issue does not exist or you do not have permission to see it.")
            return jsonify(self._issue_json(issue, _fields_param()))

    def _put_issue(self, ident: str):
        data = request.get_json(silent=True) or {}
        with self.lock:
            issue = self._find(ident)
            if issue is None:
                return _error(404, "Issue does not exist or you do not have permission to see it.")
            labels = list(issue.labels)
            fields = data.get("fields") or {}
            if "labels" in fields:
                labels = list(fields["labels"] or [])
            for op in (data.get("update") or {}).get("labels") or []:
                if "add" in op and op["add"] not in labels:
                    labels.append(op["add"])
                if "remove" in op and op["remove"] in labels:
                    labels.remove(op["remove"])
                if "set" in op:
                    labels = list(op["set"] or [])
            bad = next((x for x in labels if not isinstance(x, str) or re.search(r"\s", x)), None)
            if bad is not None:
                return _error(
                    400, errors={"labels": f"The label '{bad}' contains spaces which is invalid."}
                )
            issue.labels = labels
            for name in ("summary", "description"):
                if name in fields:
                    setattr(issue, name, fields[name])
            for field_id, value in fields.items():
                if field_id.startswith("customfield_"):
                    self._fields.setdefault(field_id, field_id)
                    issue.custom[field_id] = value
            issue.updated = _now()
        return Response(status=204)

    def _comments(self, ident: str):
        with self.lock:
            issue = self._find(ident)
            if issue is None:
                return _error(404, "Issue does not exist or you do not have permission to see it.")
            if request.method == "POST":
                body = (request.get_json(silent=True) or {}).get("body")
                if not isinstance(body, str) or not body.strip():
                    return _error(400, errors={"comment": "Comment body can not be empty!"})
                cid = self.add_comment(issue.key, body, author=BOT)
                comment = next(c for c in issue.comments if c["id"] == cid)
                response = jsonify(self._comment_json(issue, comment))
                response.status_code = 201
                return response
            start = int(request.args.get("startAt", 0))
            limit = int(request.args.get("maxResults", 5000))
            page = issue.comments[start : start + limit]
            return jsonify(
                {
                    "startAt": start,
                    "maxResults": limit,
                    "total": len(issue.comments),
                    "comments": [self._comment_json(issue, c) for c in page],
                }
            )

    def _comment(self, ident: str, cid: str):
        with self.lock:
            issue = self._find(ident)
            comment = next((c for c in issue.comments if c["id"] == cid), None) if issue else None
            if comment is None:
                return _error(404, "Can not find a comment for the id: " + cid + ".")
            if request.method == "DELETE":
                issue.comments.remove(comment)
                return Response(status=204)
            if request.method == "PUT":
                body = (request.get_json(silent=True) or {}).get("body")
                if isinstance(body, str) and body.strip():
                    comment["body"] = body
                comment["update_author"] = BOT
                comment["updated"] = _now()
            return jsonify(self._comment_json(issue, comment))

    def _remote_links(self, ident: str):
        with self.lock:
            issue = self._find(ident)
            if issue is None:
                return _error(404, "Issue does not exist or you do not have permission to see it.")
            return jsonify(
                [
                    {"self": f"{self.url}{API}/issue/{issue.key}/remotelink/{r['id']}", **r}
                    for r in issue.remote
                ]
            )

    def _available(self, issue: _Issue) -> list[tuple[str, str, str, tuple[str, ...]]]:
        category = STATUSES[issue.status][1]
        return [t for t in self._workflow if category in t[3] and t[2] != issue.status]

    def _transitions(self, ident: str):
        with self.lock:
            issue = self._find(ident)
            if issue is None:
                return _error(404, "Issue does not exist or you do not have permission to see it.")
            available = self._available(issue)
            if request.method == "GET":
                return jsonify(
                    {
                        "expand": "transitions",
                        "transitions": [
                            {
                                "id": tid,
                                "name": name,
                                "to": self._status_json(target),
                                "hasScreen": False,
                                "isGlobal": True,
                                "isInitial": False,
                                "isAvailable": True,
                                "isConditional": False,
                                "isLooped": False,
                            }
                            for tid, name, target, _ in available
                        ],
                    }
                )
            wanted = str(((request.get_json(silent=True) or {}).get("transition") or {}).get("id"))
            match = next((t for t in available if t[0] == wanted), None)
            if match is None:
                return _error(400, f"Transition id '{wanted}' is not valid for this issue.")
            self._set_status(issue, match[2])
        return Response(status=204)

    def _matching(self) -> list[_Issue] | Response:
        """Issues for the JQL forms JiraTracker sends; anything else is a 400."""
        jql = request.args.get("jql")
        if request.method == "POST":
            jql = (request.get_json(silent=True) or {}).get("jql")
        jql = jql or ""
        project = re.search(r'\bproject\s*=\s*"?([A-Za-z0-9_]+)"?', jql)
        category = re.search(r'\bstatusCategory\s*=\s*"?([A-Za-z ]+?)"?(?=\s+AND|\s+ORDER|$)', jql)
        resolved = re.search(r'\bresolved\s*>=\s*"([^"]+)"', jql)
        rest = jql
        for m in (project, category, resolved):
            if m:
                rest = rest.replace(m.group(0), "")
        rest = re.sub(r"\bORDER\s+BY\s+\w+(\s+(ASC|DESC))?", "", rest, flags=re.IGNORECASE)
        if re.sub(r"\bAND\b", "", rest).strip():
            return _error(400, f"The fake does not understand this JQL: {jql}")
        since = None
        if resolved:
            zone = ZoneInfo(self._users[BOT]["tz"])
            try:
                since = datetime.strptime(resolved.group(1), "%Y/%m/%d %H:%M").replace(tzinfo=zone)
            except ValueError:
                return _error(
                    400, f"Date value '{resolved.group(1)}' for field 'resolved' is invalid."
                )
        found = []
        for issue in self._issues.values():
            if project and issue.project != project.group(1):
                continue
            if category and STATUSES[issue.status][3].lower() != category.group(1).strip().lower():
                continue
            if since and (issue.resolved is None or issue.resolved < since):
                continue
            found.append(issue)
        found.sort(key=lambda i: (i.resolved or i.created, int(i.id)))
        return found

    def _search(self):
        if self.cloud:
            return _error(
                410,
                "The requested API has been removed. "
                "Please migrate to the /rest/api/3/search/jql API.",
            )
        with self.lock:
            found = self._matching()
            if isinstance(found, Response):
                return found
            start = int(request.args.get("startAt", 0))
            limit = int(request.args.get("maxResults", 50))
            only = _fields_param()
            return jsonify(
                {
                    "expand": "schema,names",
                    "startAt": start,
                    "maxResults": limit,
                    "total": len(found),
                    "issues": [self._issue_json(i, only) for i in found[start : start + limit]],
                }
            )

    def _search_jql(self):
        if not self.cloud:
            return _error(404, "null for uri: " + request.path)
        with self.lock:
            found = self._matching()
            if isinstance(found, Response):
                return found
            token = request.args.get("nextPageToken")
            start = int(base64.b64decode(token).decode()) if token else 0
            limit = int(request.args.get("maxResults", 50))
            page = found[start : start + limit]
            data: dict[str, Any] = {
                "issues": [self._issue_json(i, _fields_param()) for i in page],
                "isLast": start + limit >= len(found),
            }
            if not data["isLast"]:
                data["nextPageToken"] = base64.b64encode(str(start + limit).encode()).decode()
            return jsonify(data)

    def _field_list(self):
        with self.lock:
            out = [
                {
                    "id": fid,
                    "key": fid,
                    "name": name,
                    "custom": False,
                    "orderable": True,
                    "navigable": True,
                    "searchable": True,
                    "clauseNames": clauses,
                    "schema": {"type": "string", "system": fid},
                }
                for fid, (name, clauses) in SYSTEM_FIELDS.items()
            ]
            out += [
                {
                    "id": fid,
                    "key": fid,
                    "name": name,
                    "custom": True,
                    "orderable": True,
                    "navigable": True,
                    "searchable": True,
                    "clauseNames": [f"cf[{fid.split('_')[-1]}]", name],
                    "schema": {"type": "string", "customId": int(fid.split("_")[-1])},
                }
                for fid, name in self._fields.items()
                if fid.startswith("customfield_")
            ]
            return jsonify(out)

    def _permission_search(self):
        args = request.args
        permissions = [p for p in (args.get("permissions") or "").split(",") if p]
        who = args.get("accountId") if self.cloud else args.get("username")
        if not permissions or not who:
            needed = "accountId or query" if self.cloud else "username"
            return _error(400, f"The parameters 'permissions' and '{needed}' are required.")
        with self.lock:
            project = args.get("projectKey")
            if not project and args.get("issueKey"):
                issue = self._find(args["issueKey"])
                project = issue.project if issue else None
            if project not in self._projects:
                return _error(404, f"No project could be found with key '{project}'.")
            if self.cloud:
                names = [n for n, u in self._users.items() if u["account_id"] == who]
            else:  # Server: a prefix search on username, display name or email
                names = [
                    n
                    for n, u in self._users.items()
                    if n.lower().startswith(who.lower())
                    or u["display"].lower().startswith(who.lower())
                ]
            allowed = [
                n for n in names if all((project, n, p) in self._grants for p in permissions)
            ]
            return jsonify([self._user_json(n) for n in allowed])

    def _project_list(self):
        with self.lock:
            return jsonify(
                [
                    {"expand": "description,lead,url,projectKeys", **self._project_json(k)}
                    for k in self._projects
                ]
            )

    # ---- Confluence

    def _page_json(self, page: dict) -> dict:
        expand = set((request.args.get("expand") or "").split(","))
        slug = re.sub(r"\s+", "+", page["title"])
        data: dict[str, Any] = {
            "id": page["id"],
            "type": "page",
            "status": "current",
            "title": page["title"],
            "_links": {
                "webui": f"/spaces/{page['space']}/pages/{page['id']}/{slug}",
                "tinyui": f"/x/{page['id']}",
                "self": f"{self.url}/wiki/rest/api/content/{page['id']}",
                "base": f"{self.url}/wiki",
                "context": "/wiki",
            },
            "_expandable": {},
        }
        if "version" in expand:
            who = self._user_json(BOT) or {}
            data["version"] = {
                "by": {"type": "known", "displayName": who.get("displayName")},
                "when": _stamp(page["when"]).replace("+0000", "Z"),
                "number": page["version"],
                "minorEdit": False,
            }
        else:
            data["_expandable"]["version"] = ""
        if "space" in expand:
            key = page["space"]
            data["space"] = {
                "id": 98000 + sum(map(ord, key)),
                "key": key,
                "name": key.title(),
                "type": "global",
                "status": "current",
                "_links": {
                    "webui": f"/spaces/{key}",
                    "self": f"{self.url}/wiki/rest/api/space/{key}",
                },
                "_expandable": {"homepage": "", "description": "", "metadata": ""},
            }
        else:
            data["_expandable"]["space"] = f"/rest/api/space/{page['space']}"
        if "body.storage" in expand:
            data["body"] = {
                "storage": {"value": page["storage"], "representation": "storage"},
                "_expandable": {"view": "", "export_view": ""},
            }
        else:
            data["_expandable"]["body"] = ""
        return data

    def _page(self, page_id: str):
        with self.lock:
            page = self._pages.get(page_id)
            if page is None:
                response = jsonify(
                    {
                        "statusCode": 404,
                        "message": f"No content found with id: ContentId{{id={page_id}}}",
                    }
                )
                response.status_code = 404
                return response
            return jsonify(self._page_json(page))

    def _page_search(self):
        space, title = request.args.get("spaceKey"), request.args.get("title")
        with self.lock:
            results = [
                self._page_json(p)
                for p in self._pages.values()
                if (not space or p["space"] == space) and (not title or p["title"] == title)
            ]
        return jsonify(
            {"results": results, "start": 0, "limit": 25, "size": len(results), "_links": {}}
        )

    def _wiki_user(self):
        ident = (
            request.args.get("accountId") or request.args.get("key") or request.args.get("username")
        )
        with self.lock:
            name = next(
                (
                    n
                    for n, u in self._users.items()
                    if ident in (u["account_id"], u["key"], u["name"])
                ),
                None,
            )
            if name is None:
                response = jsonify({"statusCode": 404, "message": "No user found"})
                response.status_code = 404
                return response
            user = self._users[name]
            data = {"type": "known", "displayName": user["display"], "publicName": user["display"]}
            if self.cloud:
                data["accountId"] = user["account_id"]
            else:
                data.update(username=user["name"], userKey=user["key"])
            return jsonify(data)


def _fields_param() -> set[str] | None:
    """The `fields` query parameter (repeated or comma-separated); None means all."""
    values = [v for raw in request.args.getlist("fields") for v in raw.split(",") if v]
    if not values or any(v in ("*all", "*navigable") for v in values):
        return None
    return set(values)


@pytest.fixture
def fake_jira(request: pytest.FixtureRequest):
    """A running FakeJira; Cloud unless parametrized indirectly with "Server"."""
    with FakeJira(getattr(request, "param", "Cloud")) as fake:
        yield fake
