"""The queue: huey (SQLite by default, Redis at scale) carrying job ids whose durable record
is a row in the store. A job is never only in the queue: if the queue loses it (a killed
worker, a failed enqueue), the recovery sweep finds the row and enqueues it again.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime, timedelta

from huey import RedisHuey, SqliteHuey
from huey.exceptions import TaskLockedException
from sqlalchemy.exc import SQLAlchemyError

from connector.base import IncidentRef, TrackerError
from settings import Settings
from store import locks, queries
from store.db import driver_message, session_scope
from store.sqlite_files import create_private
from worker import metrics

log = logging.getLogger("pmguard.worker")

BASE_DELAY = 2.0  # seconds before the first retry; doubles per attempt
MAX_DELAY = 600.0
LOCK_WAIT = 1.0  # another job holds the incident: try again this soon
STALE_AFTER = timedelta(minutes=10)  # a running job not heard of for this long was lost


def make_huey(settings: Settings, *, name: str = "pmguard") -> SqliteHuey | RedisHuey:
    if settings.redis_url:
        return RedisHuey(name, url=settings.redis_url, utc=True)
    queue = (settings.data_dir / "queue.db").resolve()
    create_private(queue)  # 0600 in a 0700 directory, like the database
    return SqliteHuey(name, filename=str(queue), utc=True)


def backoff(attempt: int, retry_after: float | None = None, base: float = BASE_DELAY) -> float:
    """Exponential backoff with jitter; a tracker's Retry-After wins when longer."""
    delay = min(MAX_DELAY, base * 2 ** max(0, attempt - 1))
    delay = delay * (0.75 + random.random() / 2)
    return max(delay, retry_after or 0.0)


def ref_from_payload(payload: dict) -> IncidentRef:
    return IncidentRef(payload["tracker"], payload["site"], payload["project"], payload["key"])


def payload_ref(payload: dict) -> IncidentRef | None:
    """The incident a job is about; None for a job about no one incident (reconcile)."""
    return ref_from_payload(payload) if "key" in payload else None


def ref_payload(ref: IncidentRef) -> dict:
    return {"tracker": ref.tracker, "site": ref.site, "project": ref.project, "key": ref.key}


class JobRunner:
    """Registers the queue task on a huey instance and runs job rows through it."""

    def __init__(self, service, huey, *, base_delay: float = BASE_DELAY) -> None:
        self.service = service
        self.huey = huey
        self.base_delay = base_delay
        self.task = huey.task(name="pmguard.run_job")(self.run)
        self.fan_out = huey.task(name="pmguard.fan_out")(self._split)
        huey.periodic_task(_every_minute(), name="pmguard.recover")(self.recover)
        huey.periodic_task(_every_minute(), name="pmguard.schedule_reconcile")(
            self.schedule_reconcile)

    def enqueue(self, job_id: int, delay: float | None = None, outages: int = 0) -> None:
        args = (job_id, outages) if outages else (job_id,)
        if delay:
            self.task.schedule(args, delay=delay)
        else:
            self.task(*args)

    def schedule_reconcile(self) -> int:
        try:
            return len(self.service.schedule_reconcile())
        except Exception:  # a tracker or database hiccup: the next minute tries again
            log.exception("could not schedule the periodic reconcile")
            return 0

    def enqueue_many(self, job_ids: list[int]) -> None:
        """Queue several jobs: one message for a batch, which the first worker to take it
        splits into one message per job so the batch still runs in parallel."""
        if len(job_ids) == 1:
            self.task(job_ids[0])
        elif job_ids:
            self.fan_out(list(job_ids))

    def _split(self, job_ids: list[int]) -> None:
        for job_id in job_ids:
            self.task(job_id)

    def run(self, job_id: int, outages: int = 0) -> str:
        """Run one job; `outages` counts the database outages that delayed its start."""
        sessions = self.service.sessions
        try:
            with session_scope(sessions) as session:
                job = queries.start_job(session, job_id)
                if job is None:
                    return "gone"  # finished or retried elsewhere already
                kind, payload, attempt = job.kind, dict(job.payload or {}), job.attempts
        except SQLAlchemyError as error:
            # The database is down (the queue is not): try again with backoff rather than
            # leave the row to the stale sweep, which waits STALE_AFTER. Nothing was
            # started, so no attempt is spent.
            delay = backoff(outages + 1, base=self.base_delay)
            log.warning("job %s cannot start, the database is unavailable; again in %.1fs: %s",
                        job_id, delay, driver_message(error))
            self.enqueue(job_id, delay=delay, outages=outages + 1)
            return "database-unavailable"
        ref = payload_ref(payload)
        started = time.perf_counter()
        try:
            return self._run(job_id, kind, payload, attempt, ref)
        finally:
            metrics.JOB_SECONDS.labels(kind).observe(time.perf_counter() - started)

    def _run(self, job_id: int, kind: str, payload: dict, attempt: int, ref) -> str:
        sessions = self.service.sessions
        owner = locks.new_owner()
        try:
            if ref is not None and not locks.acquire(self.service.engine, ref.id, owner):
                raise TaskLockedException(ref.id)
            try:
                result = self.service.run_job(kind, payload)
            finally:
                if ref is not None:
                    locks.release(self.service.engine, ref.id, owner)
        except TaskLockedException:
            with session_scope(sessions) as session:
                queries.requeue_job(session, job_id)
            self.enqueue(job_id, delay=min(LOCK_WAIT, self.base_delay))
            return "locked"
        except TrackerError as exc:
            metrics.TRACKER_ERRORS.labels(str(exc.transient).lower()).inc()
            if exc.retry_after:
                metrics.RATE_LIMIT_WAITS.inc(exc.retry_after)
            result = self._failed(job_id, attempt, str(exc), exc.transient, exc.retry_after)
            metrics.JOBS.labels(kind, result).inc()
            return result
        except Exception as exc:  # a bug or an outage we did not foresee: keep the job
            log.exception("job %s failed", job_id, extra={"job": job_id})
            result = self._failed(job_id, attempt, f"{exc.__class__.__name__}: {exc}", True, None)
            metrics.JOBS.labels(kind, result).inc()
            return result
        with session_scope(sessions) as session:
            queries.finish_job(session, job_id)
        metrics.JOBS.labels(kind, "done").inc()
        return result

    def _failed(
        self, job_id: int, attempt: int, error: str, transient: bool, retry_after: float | None
    ) -> str:
        delay = backoff(attempt, retry_after, self.base_delay) if transient else None
        retry_at = datetime.now(UTC) + timedelta(seconds=delay) if delay is not None else None
        with session_scope(self.service.sessions) as session:
            job = queries.fail_job(session, job_id, error, retry_at)
            status = job.status
        if status == "queued" and delay is not None:
            log.warning("job %s will retry in %.1fs: %s", job_id, delay, error)
            self.enqueue(job_id, delay=delay)
            return "retrying"
        log.error("job %s failed for good: %s", job_id, error)
        return "failed"

    def recover(self) -> int:
        """Enqueue jobs the queue lost: jobs whose worker on this host died, due queued
        jobs, and running jobs gone quiet for longer than any job runs."""
        now = datetime.now(UTC)
        with session_scope(self.service.sessions) as session:
            orphans = [j.id for j in queries.orphaned_jobs(session)]
            stale = [j.id for j in queries.pending_jobs(session, now - STALE_AFTER)]
            ids = list(dict.fromkeys(orphans + stale))
        for job_id in ids:
            self.enqueue(job_id)
        if ids:
            log.warning("recovered %d job(s) the queue had lost", len(ids))
        return len(ids)


def _every_minute():
    from huey import crontab

    return crontab(minute="*")
