"""The service's parts wired together: settings, store, trackers, rule pack, policy, queue.

Web and worker both hold one `Service`; the web side only records and enqueues, the worker
side runs jobs.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from datetime import UTC, datetime

from connector.base import (
    CLOSED,
    GITHUB,
    INCIDENT_EDITED,
    POSTMORTEM_EDITED,
    RECHECK,
    Incident,
    IncidentRef,
    WebhookEvent,
)
from rules.incident_policy import IncidentPolicy, policy_from_mapping
from rules.schema import RulePack, load_pack
from settings import Settings
from store import queries
from store.db import make_engine, session_factory, session_scope
from worker.check import Outcome, check_incident
from worker.jobs import JobRunner, make_huey, ref_from_payload, ref_payload
from worker.trackers import Trackers

log = logging.getLogger("pmguard.service")

CHECK = "check"  # check one incident
RECHECK_JOB = "recheck"  # check one incident if the person asking may
POSTMORTEM_JOB = "postmortem"  # re-check every incident linking a postmortem issue
RECONCILE = "reconcile"


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        trackers: Trackers | None = None,
        pack: RulePack | None = None,
        huey=None,
        retry_base_delay: float | None = None,
    ) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database)
        self.sessions = session_factory(self.engine)
        self.trackers = trackers or Trackers(settings)
        self.pack = pack or load_pack(None)
        self.policy: IncidentPolicy = policy_from_mapping(settings.policy or {}, "policy")
        self.huey = huey if huey is not None else make_huey(settings)
        self.jobs = JobRunner(
            self, self.huey, **({"base_delay": retry_base_delay} if retry_base_delay else {})
        )
        self.base_url = f"http://{settings.host}:{settings.port}"
        self._handoff: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._handoff_lock = threading.Lock()
        self._handoff_pid = 0

    # ---- deciding ------------------------------------------------------------------------

    def is_incident(self, incident: Incident) -> bool:
        ref = incident.ref
        if ref.tracker == GITHUB:
            gh = self.settings.github
            if gh.repositories and ref.project not in gh.repositories:
                return False
            if incident.state_reason in gh.exempt_state_reasons:
                return False
            wanted = {label.lower() for label in gh.incident_labels}
            return bool(wanted & {label.lower() for label in incident.labels})
        js = self.settings.jira_for(ref.site)
        if js is None or (js.projects and ref.project not in js.projects):
            return False
        return (incident.issue_type or "").lower() in {t.lower() for t in js.issue_types}

    def job_for(self, event: WebhookEvent) -> tuple[str, dict] | None:
        """Which job a webhook event asks for, from the payload alone (no tracker call)."""
        payload = ref_payload(event.ref)
        labels = {label.lower() for label in event.labels}
        if event.ref.tracker == GITHUB:
            gh = self.settings.github
            if gh.repositories and event.ref.project not in gh.repositories:
                return None
            is_pm = gh.postmortem_label.lower() in labels
            is_incident = bool(labels & {label.lower() for label in gh.incident_labels})
        else:
            js = self.settings.jira_for(event.ref.site)
            if js is None:
                return None
            # Issue-link events name the issue by id only (project ""): the worker decides.
            if js.projects and event.ref.project and event.ref.project not in js.projects:
                return None
            kind = (event.issue_type or "").lower()
            is_pm = kind in {t.lower() for t in js.postmortem_issue_types}
            # issuelink events carry no type; let the worker look.
            is_incident = kind in {t.lower() for t in js.issue_types} or not kind
        if event.kind == CLOSED:
            if not is_incident:
                return None
            if event.state_reason in self.settings.github.exempt_state_reasons:
                return None
            return CHECK, {**payload, "reason": "closed"}
        if event.kind == RECHECK:
            return RECHECK_JOB, {**payload, "actor": event.actor}
        if event.kind in (INCIDENT_EDITED, POSTMORTEM_EDITED):
            if is_pm:
                return POSTMORTEM_JOB, payload
            if is_incident:
                return CHECK, {**payload, "reason": "edited"}
        return None

    # ---- queueing ------------------------------------------------------------------------

    def create_job(self, session, kind: str, payload: dict) -> int:
        incident_id = IncidentRef(**{k: payload[k] for k in ("tracker", "site", "project", "key")}
                                  ).id if "tracker" in payload else None
        job = queries.create_job(
            session, kind, incident_id, payload, self.settings.max_attempts
        )
        session.flush()
        return job.id

    def enqueue(self, job_id: int) -> None:
        try:
            self.jobs.enqueue(job_id)
        except Exception:  # the row is durable; the recovery sweep will enqueue it
            log.exception("could not enqueue job %s; recovery will pick it up", job_id)

    def enqueue_soon(self, job_id: int) -> None:
        """Hand a committed job to the queue from a background thread.

        The job row is the durable record, so the webhook can answer as soon as it is
        committed; pushing the id onto huey (a second store, a second fsync) happens off the
        request path. Should the process die first, the recovery sweep enqueues the row.
        """
        with self._handoff_lock:
            if self._handoff_pid != os.getpid():  # a fork (gunicorn) has no thread yet
                self._handoff = queue.SimpleQueue()
                threading.Thread(target=self._drain, name="pmguard-enqueue", daemon=True).start()
                self._handoff_pid = os.getpid()
        self._handoff.put(job_id)

    def _drain(self) -> None:
        while True:
            self.enqueue(self._handoff.get())

    # ---- running -------------------------------------------------------------------------

    def run_job(self, kind: str, payload: dict) -> str:
        if kind == CHECK:
            return check_incident(self, ref_from_payload(payload),
                                  reason=payload.get("reason", "closed")).status
        if kind == RECHECK_JOB:
            ref = ref_from_payload(payload)
            tracker = self.trackers.for_ref(ref)
            if not tracker.can_write(ref, payload.get("actor", "")):
                return "not-allowed"
            return check_incident(self, ref, reason="recheck").status
        if kind == POSTMORTEM_JOB:
            return self._postmortem_edited(ref_from_payload(payload))
        if kind == RECONCILE:
            return str(len(self.reconcile_project(payload["tracker"], payload["project"],
                                                  datetime.fromisoformat(payload["since"]),
                                                  payload.get("site"))))
        raise ValueError(f"unknown job kind {kind!r}")

    def _postmortem_edited(self, pm_ref: IncidentRef) -> str:
        tracker = self.trackers.for_ref(pm_ref)
        refs = {r.id: r for r in tracker.incidents_linking(pm_ref)}
        with session_scope(self.sessions) as session:
            for row in queries.incidents_by_postmortem_locator(session, pm_ref):
                refs.setdefault(row.id, IncidentRef(row.tracker, row.site, row.project, row.key))
            for ref in refs.values():
                job_id = self.create_job(session, CHECK, {**ref_payload(ref), "reason": "edited"})
                session.flush()
                self.enqueue(job_id)
        return f"rechecking {len(refs)}"

    def check_now(self, ref: IncidentRef, reason: str = "manual") -> Outcome:
        return check_incident(self, ref, reason=reason)

    def reconcile_project(
        self, tracker_name: str, project: str, since: datetime, site: str | None = None
    ) -> list[str]:
        """Closed incidents in `project` since `since` that the store has no check for."""
        tracker = self.trackers.get(tracker_name, site)
        missed = []
        for ref in tracker.recently_closed(project, since):
            with session_scope(self.sessions) as session:
                if queries.checked_since(session, ref.id, since):
                    continue
                job_id = self.create_job(session, CHECK, {**ref_payload(ref),
                                                          "reason": "reconcile"})
            self.enqueue(job_id)
            missed.append(ref.id)
        return missed

    def projects(self, tracker_name: str, site: str | None = None) -> list[str]:
        if tracker_name == GITHUB:
            return list(self.settings.github.repositories) or list(
                self.trackers.get(GITHUB).repositories()
            )
        js = self.settings.jira_for(site or self.trackers.site("jira"))
        configured = list(js.projects) if js else []
        return configured or list(self.trackers.get("jira", site).projects())

    def details_url(self, ref: IncidentRef) -> str:
        return f"{self.base_url}/incidents/{ref.id}"

    def now(self) -> datetime:
        return datetime.now(UTC)
