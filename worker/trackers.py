"""Tracker clients built from the settings, one per configured site."""

from __future__ import annotations

import threading

from connector.base import GITHUB, JIRA, IncidentRef, Tracker
from settings import Settings


class UnknownSite(LookupError):
    pass


class Trackers:
    """Lazily built, shared tracker clients; the worker asks for the one a ref belongs to."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[tuple[str, str], Tracker] = {}
        self._lock = threading.Lock()

    def site(self, tracker: str) -> str:
        """The primary site of a tracker kind."""
        if tracker == GITHUB:
            return self.settings.github.api_url.rstrip("/")
        return self.settings.jira.url.rstrip("/")

    def sites(self, tracker: str) -> list[str]:
        if tracker == GITHUB:
            return [self.site(GITHUB)] if self.settings.github.configured else []
        return [j.url.rstrip("/") for j in self.settings.jiras if j.configured]

    def get(self, tracker: str, site: str | None = None) -> Tracker:
        site = (site or self.site(tracker)).rstrip("/")
        with self._lock:
            if (tracker, site) not in self._clients:
                self._clients[(tracker, site)] = self._build(tracker, site)
            return self._clients[(tracker, site)]

    def for_ref(self, ref: IncidentRef) -> Tracker:
        return self.get(ref.tracker, ref.site)

    def _build(self, tracker: str, site: str) -> Tracker:
        if tracker == GITHUB:
            from connector.github import GitHubTracker

            gh = self.settings.github
            if not gh.configured or site != self.site(GITHUB):
                raise UnknownSite(f"no GitHub credentials for {site}")
            return GitHubTracker(
                gh.api_url,
                token=gh.token or None,
                app_id=gh.app_id,
                private_key=gh.private_key or None,
                bot_login=gh.bot_login or None,
                postmortem_label=gh.postmortem_label,
                timeout=self.settings.tracker_timeout,
            )
        if tracker == JIRA:
            from connector.jira import JiraTracker

            js = self.settings.jira_for(site)
            if js is None or not js.configured:
                raise UnknownSite(f"no Jira credentials for {site}")
            return JiraTracker(
                js.url,
                email=js.email or None,
                token=js.token or None,
                pat=js.pat or None,
                postmortem_issue_types=js.postmortem_issue_types,
                link_types=js.link_types,
                url_field=js.url_field or None,
                reopen_transition=js.reopen_transition,
                severity_field=js.severity_field or None,
                bot_account=js.bot_account or None,
                timeout=self.settings.tracker_timeout,
            )
        raise UnknownSite(f"unknown tracker {tracker!r}")
