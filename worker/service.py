"""The service's parts wired together: settings, store, trackers, rule pack, policy, queue.

Web and worker both hold one `Service`; the web side only records and enqueues, the worker
side runs jobs.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy.exc import SQLAlchemyError

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
from nlp.limits import TookTooLong
from nlp.model import Analysis
from rules.incident_policy import IncidentPolicy, policy_from_mapping
from rules.schema import PackError, RulePack, load_pack
from rules.versions import pack_from_version
from settings import Settings
from store import locks, queries
from store import packs as pack_store
from store.db import driver_message, make_engine, session_factory, session_scope
from store.intake import Intake
from worker import metrics
from worker.analysis_pool import AnalysisPool, shared_pool
from worker.check import Outcome, check_incident
from worker.jobs import JobRunner, make_huey, payload_ref, ref_from_payload, ref_payload
from worker.trackers import Trackers

log = logging.getLogger("pmguard.service")

CHECK = "check"  # check one incident
RECHECK_JOB = "recheck"  # check one incident if the person asking may
POSTMORTEM_JOB = "postmortem"  # re-check every incident linking a postmortem issue
RECONCILE = "reconcile"
RECONCILE_SCHEDULE = "schedule:reconcile"  # the lease that spaces scheduled reconciles

PACK_NAME = pack_store.DEFAULT_NAME  # the published pack the worker runs
# How long the hand-off thread waits after a committed job for more to join it, so a
# burst of deliveries becomes one queue message instead of one per delivery.
HANDOFF_LINGER_SECONDS = 0.02
HANDOFF_MAX_BATCH = 200
# How stale a process's view of the active pack may be: a publish reaches every web and
# worker process within this long, for one indexed query per interval.
PACK_REFRESH_SECONDS = 5.0
_UNRESOLVED = object()  # in a job whose pack has not been read yet


class Service:
    pack_refresh_seconds: float = PACK_REFRESH_SECONDS

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
        self.intake = Intake(self.engine, durability=settings.intake_durability,
                             on_batch=metrics.INTAKE_BATCH.observe)
        self.trackers = trackers or Trackers(settings)
        # An explicit pack (tests, a pack file) is used as given and never replaced by a
        # published one.
        self._pack_override: RulePack | None = pack
        self._pack_lock = threading.Lock()
        self._pack_checked = float("-inf")
        self._published: tuple[int, RulePack] | None = None  # (version id, parsed pack)
        self._shipped_pack: RulePack | None = None
        self._broken_version: int | None = None  # an active version that does not parse
        self._job_pack = threading.local()  # the pack pinned for the job on this thread
        self.policy: IncidentPolicy = policy_from_mapping(settings.policy or {}, "policy")
        self.huey = huey if huey is not None else make_huey(settings)
        self.jobs = JobRunner(
            self, self.huey, **({"base_delay": retry_base_delay} if retry_base_delay else {})
        )
        self.base_url = f"http://{settings.host}:{settings.port}"
        # Analysis never runs in this process: see worker/analysis_pool.py.
        self.analysis: AnalysisPool = shared_pool(settings.analysis_processes)
        self._handoff: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._handoff_lock = threading.Lock()
        self._handoff_pid = 0

    # ---- rule pack -----------------------------------------------------------------------

    @property
    def pack(self) -> RulePack:
        """The rule pack to check with: the constructor's `pack=` when given, else the
        active published version of the "default" pack, else the shipped default.

        Inside a job the pack is read once, on first use, and held for the rest of the job:
        check_incident reads `service.pack` for the check and again for the pack name and
        version it stores, and a publish landing in between must not make the analysis
        name a version it was not checked with.
        """
        if self._pack_override is not None:
            return self._pack_override
        pinned = getattr(self._job_pack, "pack", None)
        if pinned is _UNRESOLVED:
            pinned = self._job_pack.pack = self.current_pack()
        return pinned if pinned is not None else self.current_pack()

    @pack.setter
    def pack(self, value: RulePack | None) -> None:
        self._pack_override = value

    def current_pack(self, *, refresh: bool = False) -> RulePack:
        """The active published pack (re-checked at most every `pack_refresh_seconds`, or
        now with `refresh=True`), else the shipped default."""
        with self._pack_lock:
            now = time.monotonic()
            if refresh or now - self._pack_checked >= self.pack_refresh_seconds:
                self._pack_checked = now
                self._refresh_published()
            if self._published is not None:
                return self._published[1]
            if self._shipped_pack is None:
                self._shipped_pack = load_pack(None)
            return self._shipped_pack

    def _refresh_published(self) -> None:
        # Keeps the last good pack on any failure: a database hiccup or a stored version
        # that no longer parses must not stop checks, and the shipped default is only the
        # answer when nothing was ever published.
        try:
            with session_scope(self.sessions) as session:
                version_id = pack_store.active_version_id(session, PACK_NAME)
                if version_id is None:
                    self._published = None
                    return
                known = self._published[0] if self._published is not None else None
                if version_id in (known, self._broken_version):
                    return
                row = pack_store.get_version(session, version_id)
                if row is None:  # deleted by hand between the two reads
                    return
        except SQLAlchemyError as error:  # the database is down, or not migrated yet
            log.warning("cannot read the active rule pack; keeping the current one: %s",
                        driver_message(error))
            return
        try:
            # Parsed outside the transaction: on SQLite it holds the write lock.
            self._published = (version_id, pack_from_version(row))
        except PackError:
            # Logged once per version, not at every refresh; publishing a fixed version
            # (or rolling back) replaces it.
            self._broken_version = version_id
            log.exception("active rule pack %s %s does not load; keeping the current one",
                          row.name, row.version)

    @contextmanager
    def _pack_for_job(self) -> Iterator[None]:
        if getattr(self._job_pack, "pack", None) is not None:  # nested: the outer job's
            yield
            return
        self._job_pack.pack = _UNRESOLVED  # resolved lazily: not every job checks
        try:
            yield
        finally:
            self._job_pack.pack = None

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
        ref = payload_ref(payload)
        job = queries.create_job(
            session, kind, ref.id if ref else None, payload, self.settings.max_attempts
        )
        session.flush()
        return job.id

    def enqueue(self, job_id: int) -> None:
        self.enqueue_many([job_id])

    def enqueue_soon(self, job_id: int) -> None:
        """Hand a committed job to the queue from a background thread.

        The job row is the durable record, so the webhook can answer as soon as it is
        committed; pushing the id onto huey (a second store, a second write) happens off
        the request path, and a burst of jobs goes as one queue message. Should the
        process die first, the recovery sweep enqueues the row.
        """
        with self._handoff_lock:
            if self._handoff_pid != os.getpid():  # a fork (gunicorn) has no thread yet
                self._handoff = queue.SimpleQueue()
                threading.Thread(target=self._drain, name="pmguard-enqueue", daemon=True).start()
                atexit.register(self._flush_handoff)
                self._handoff_pid = os.getpid()
        self._handoff.put(job_id)

    def _drain(self) -> None:
        while True:
            batch = [self._handoff.get()]
            deadline = time.monotonic() + HANDOFF_LINGER_SECONDS
            while len(batch) < HANDOFF_MAX_BATCH:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._handoff.get(timeout=remaining))
                except queue.Empty:
                    break
            self.enqueue_many(batch)

    def _flush_handoff(self) -> None:
        # A graceful stop (gunicorn's SIGTERM) hands over what is still waiting rather
        # than leaving it to the recovery sweep.
        batch = []
        while True:
            try:
                batch.append(self._handoff.get_nowait())
            except queue.Empty:
                break
        if batch:
            self.enqueue_many(batch)

    def enqueue_many(self, job_ids: list[int]) -> None:
        try:
            self.jobs.enqueue_many(job_ids)
        except Exception:  # the rows are durable; the recovery sweep will enqueue them
            log.exception("could not enqueue jobs %s; recovery will pick them up", job_ids)

    # ---- running -------------------------------------------------------------------------

    def run_job(self, kind: str, payload: dict) -> str:
        with self._pack_for_job():
            return self._run_job(kind, payload)

    def _run_job(self, kind: str, payload: dict) -> str:
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
            since = datetime.fromisoformat(payload["since"])
            tracker, site = payload["tracker"], payload.get("site")
            # No project: every project the site's credentials reach (the schedule's job).
            projects = ([payload["project"]] if payload.get("project")
                        else self.projects(tracker, site))
            return str(sum(len(self.reconcile_project(tracker, project, since, site))
                           for project in projects))
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
        with self._pack_for_job():
            return check_incident(self, ref, reason=reason)

    def reconcile_project(
        self, tracker_name: str, project: str, since: datetime, site: str | None = None
    ) -> list[str]:
        """Closed incidents in `project` since `since` that the store has no check for."""
        tracker = self.trackers.get(tracker_name, site)
        missed = []
        for ref in tracker.recently_closed(project, since):
            with session_scope(self.sessions) as session:
                if queries.checked_since(session, ref.id, since) or \
                        queries.check_pending(session, ref.id):
                    continue
                job_id = self.create_job(session, CHECK, {**ref_payload(ref),
                                                          "reason": "reconcile"})
            self.enqueue(job_id)
            missed.append(ref.id)
        return missed

    def schedule_reconcile(self) -> list[int]:
        """Queue a reconcile of every tracker site when one is due; the job ids.

        Every worker process calls this each minute; a lease in the database that lasts
        `reconcile_every_hours` lets exactly one of them through per interval. The look
        back is `reconcile_window_hours`, but never before the store's first job: a new
        installation does not comment on incidents closed before it was set up.
        """
        every = self.settings.reconcile_every_hours
        if not every:
            return []
        owner = f"schedule:{locks.new_owner()}"  # not a process: a restart keeps the lease
        if not locks.acquire(self.engine, RECONCILE_SCHEDULE, owner, timedelta(hours=every)):
            return []
        targets = [(name, site) for name in (GITHUB, "jira")
                   for site in self.trackers.sites(name)]
        with session_scope(self.sessions) as session:
            first = queries.first_job_at(session)
            if first is None or not targets:
                return []
            since = max(first, self.now() - timedelta(hours=self.settings.reconcile_window_hours))
            ids = [
                self.create_job(session, RECONCILE, {"tracker": name, "site": site,
                                                     "project": None,
                                                     "since": since.isoformat()})
                for name, site in targets
            ]
        self.enqueue_many(ids)
        log.info("scheduled reconcile of %d tracker site(s) since %s", len(ids),
                 since.isoformat())
        return ids

    def projects(self, tracker_name: str, site: str | None = None) -> list[str]:
        if tracker_name == GITHUB:
            return list(self.settings.github.repositories) or list(
                self.trackers.get(GITHUB).repositories()
            )
        js = self.settings.jira_for(site or self.trackers.site("jira"))
        configured = list(js.projects) if js else []
        return configured or list(self.trackers.get("jira", site).projects())

    def analyse(self, source: str, *, deadline: float | None = None, **options: Any) -> Analysis:
        """`nlp.analysis.analyse` in the analysis processes, stopped at `deadline` (a
        `time.monotonic()` value; default: `analysis_timeout` from now). Raises the
        `nlp.limits.Unchecked` family for text too large or too slow to check."""
        budget = float(self.settings.analysis_timeout)
        remaining = budget if deadline is None else deadline - time.monotonic()
        if remaining <= 0:
            raise TookTooLong(budget)
        return self.analysis.analyse(source, timeout=remaining, **options)

    def warm_up(self) -> None:
        """Start the analysis processes (each loads the spaCy pipeline and compiles the
        rule pack) before the first job, so the first check after a (re)start is as fast
        as the others."""
        self.analyse("Warm-up.", pack=self.pack, check_actions=False)

    def close(self) -> None:
        """Close the database connections this process holds."""
        self.intake.close()
        self.engine.dispose()

    def details_url(self, ref: IncidentRef) -> str:
        # "#" would end the path at the browser; quote it so the link needs no script.
        return f"{self.base_url}/incidents/{quote(ref.id, safe=':/')}"

    def now(self) -> datetime:
        return datetime.now(UTC)
