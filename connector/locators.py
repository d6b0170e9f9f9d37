"""Postmortem references as validated components. Pure: no I/O.

A reference comes from text anyone can write into an incident, so it is parsed into its
parts (owner, repository, path, git ref; a Jira key; a Confluence page id) and each part is
checked before any API call is built from it. PyGithub and requests put a path into a URL
as given, and urllib3 then resolves dot segments: `contents/../../../../user` becomes
`GET /user`. So a `..` segment, a percent-encoded one, a backslash or an absolute path is
refused here with a clear error rather than sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from connector.base import TrackerError

# GitHub logins are [A-Za-z0-9-]; Enterprise may also have "_" and ".". Never a leading "."
# so "." and ".." are not owners. Repository names may start with "." (".github").
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_NUMBER = re.compile(r"^[0-9]{1,12}$")
# A subset of `git check-ref-format`: no "..", "@{", "//", control characters, spaces,
# or ~ ^ : ? * [ \ ; not starting or ending with "/"; not ending with ".lock".
_GIT_REF = re.compile(
    r"^(?!/)(?!.*(?:\.\.|@\{|//))[^\x00-\x20\x7f~^:?*\[\\]{1,255}(?<!/)(?<!\.lock)$"
)
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Jira project keys: an upper-case letter, then upper-case letters, digits or "_".
JIRA_KEY = re.compile(r"^([A-Z][A-Z0-9_]+)-([0-9]{1,12})$")
_PAGE_ID = re.compile(r"^[0-9]{1,20}$")


class BadReference(TrackerError):
    """A reference that cannot name a postmortem safely; never retried, never sent."""

    def __init__(self, message: str):
        super().__init__(message, transient=False)


@dataclass(frozen=True)
class GitHubIssue:
    owner: str
    repo: str
    number: int

    @property
    def project(self) -> str:
        return f"{self.owner}/{self.repo}"

    @property
    def locator(self) -> str:
        return f"{self.project}#{self.number}"


@dataclass(frozen=True)
class GitHubFile:
    owner: str
    repo: str
    path: str
    ref: str | None = None  # None: the default branch

    @property
    def project(self) -> str:
        return f"{self.owner}/{self.repo}"

    @property
    def locator(self) -> str:
        return f"{self.project}:{self.path}" + (f"@{self.ref}" if self.ref else "")


def github_project(text: str) -> tuple[str, str]:
    """ "owner/repo" -> (owner, repo), both checked."""
    owner, sep, repo = text.partition("/")
    if not sep or not _OWNER.match(owner) or not _REPO.match(repo) or repo in (".", ".."):
        raise BadReference(f"{text!r} is not a GitHub repository (owner/name)")
    return owner, repo


def github_issue(locator: str) -> GitHubIssue:
    """ "owner/repo#12" -> GitHubIssue; "#012" and "#12" are the same issue."""
    project, sep, number = locator.rpartition("#")
    if not sep or not _NUMBER.match(number) or int(number) < 1:
        raise BadReference(f"{locator!r} is not a GitHub issue reference (owner/repo#123)")
    owner, repo = github_project(project)
    return GitHubIssue(owner, repo, int(number))


def github_file(locator: str) -> GitHubFile:
    """ "owner/repo:path/to/pm.md@ref" -> GitHubFile; no "@" means the default branch."""
    project, sep, rest = locator.partition(":")
    path, at, gitref = rest.rpartition("@")
    if not at:
        path, gitref = rest, ""
    if not sep or not path:
        raise BadReference(f"{locator!r} is not a GitHub file reference (owner/repo:path@ref)")
    owner, repo = github_project(project)
    return GitHubFile(owner, repo, repository_path(path), git_ref(gitref) if gitref else None)


def repository_path(path: str) -> str:
    """A file path inside a repository, as given (decoded), or BadReference."""
    if "\\" in path:
        raise BadReference(f"file path {path!r} contains a backslash")
    if path.startswith("/"):
        raise BadReference(f"file path {path!r} is absolute; give it from the repository root")
    for segment in path.split("/"):
        if segment in (".", ".."):
            raise BadReference(f"file path {path!r} contains a '{segment}' segment")
        if not segment:
            raise BadReference(f"file path {path!r} contains an empty segment")
        if _ESCAPE.search(segment):
            # URLs are decoded once; an escape left over is double encoding (%252e%252e).
            raise BadReference(f"file path {path!r} contains encoded characters")
        if _CONTROL.search(segment):
            raise BadReference(f"file path {path!r} contains control characters")
    return path


def git_ref(text: str) -> str:
    if not _GIT_REF.match(text) or _ESCAPE.search(text):
        raise BadReference(f"{text!r} is not a valid branch, tag or commit")
    return text


def github_url(url: str, hosts: set[str]) -> GitHubIssue | GitHubFile | None:
    """The issue or file a GitHub web URL names (…/owner/repo/issues/12, …/blob/ref/path).

    None when the URL is on another host or names something else (a pull request, a tree);
    BadReference when it is on these hosts but its parts are unsafe. The fragment and query
    are ignored, so `#L3`, `#issuecomment-1` and `?plain=1` name the same thing.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.netloc.lower() not in hosts:
        return None
    if "\\" in parts.path or "%5c" in parts.path.lower():
        raise BadReference(f"{url} contains a backslash")
    # Each segment is decoded once; "%2F" inside one becomes "/" and is split again by the
    # path check, so "..%2F.." cannot hide a traversal.
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if len(segments) < 4 or segments[2] not in ("issues", "blob"):
        return None
    owner, repo = github_project(f"{segments[0]}/{segments[1]}")
    if segments[2] == "issues":
        if len(segments) != 4:
            return None
        return github_issue(f"{owner}/{repo}#{segments[3]}")
    if len(segments) < 5:
        return None
    # A branch with "/" in its name is ambiguous in a blob URL; the first segment is taken
    # as the ref (right for SHAs, tags and plain branches).
    return GitHubFile(owner, repo, repository_path("/".join(segments[4:])), git_ref(segments[3]))


def github_web_hosts(site: str) -> set[str]:
    """Hosts whose issue and blob URLs the GitHub API at `site` reads."""
    # api.github.com serves github.com; Enterprise serves the API under host/api/v3.
    host = urlsplit(site).netloc.lower()
    return {host, host.removeprefix("api.")}


def jira_key(text: str) -> str:
    """A Jira issue key (OPS-12), or BadReference."""
    if not JIRA_KEY.match(text):
        raise BadReference(f"{text!r} is not a Jira issue key (PROJECT-123)")
    return text


def jira_project(key: str) -> str:
    return jira_key(key).rsplit("-", 1)[0]


def confluence_page_id(text: str) -> str:
    if not _PAGE_ID.match(text):
        raise BadReference(f"{text!r} is not a Confluence page id (digits only)")
    return text
