"""The lifecycle of a durable job: queued -> running -> done, or back to queued for a
retry, or failed once its attempts are spent. Retried by hand with retry_job.

The queue only carries job ids. Whatever happens to a queue message (a worker killed
mid-task, Redis flushed), the row here says what still has to run.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from store.locks import process_gone, worker_id
from store.models import Job
from store.types import utcnow

DEFAULT_MAX_ATTEMPTS = 5
# Enough of a traceback to act on, without one runaway error bloating the table.
MAX_ERROR_CHARS = 10_000


class JobStateError(Exception):
    """The job is not in a state that allows the requested transition."""


def create_job(
    session: Session,
    kind: str,
    incident_id: str | None = None,
    payload: Mapping[str, Any] | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> Job:
    """A queued job; flushed, so `job.id` is ready to hand to the queue."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    job = Job(
        kind=kind,
        incident_id=incident_id,
        payload=dict(payload or {}),
        status="queued",
        attempts=0,
        max_attempts=max_attempts,
    )
    session.add(job)
    session.flush()
    return job


def start_job(session: Session, job_id: int) -> Job | None:
    """Mark the job running and count the attempt; None when there is nothing to run.

    None for a job already done or failed (a duplicate queue message). A job found
    `running` is started again: that is a worker that died mid-attempt being recovered.
    If that keeps happening until the attempts are spent, the job is failed here rather
    than crash-looping a worker forever.
    """
    job = _locked(session, job_id)
    if job.status in ("done", "failed"):
        return None
    now = utcnow()
    if job.attempts >= job.max_attempts:
        job.status = "failed"
        job.finished_at = now
        job.next_attempt_at = None
        job.last_error = _clip(
            f"gave up after {job.attempts} attempts; the last one never finished "
            f"(worker stopped?)\n{job.last_error or ''}".rstrip()
        )
        session.flush()
        return None
    job.status = "running"
    job.attempts += 1
    job.owner = worker_id()
    job.next_attempt_at = None
    job.updated_at = now
    session.flush()
    return job


def finish_job(session: Session, job_id: int) -> Job:
    """Mark the job done."""
    job = _locked(session, job_id)
    job.status = "done"
    job.finished_at = utcnow()
    job.next_attempt_at = None
    session.flush()
    return job


def fail_job(session: Session, job_id: int, error: str, retry_at: datetime | None = None) -> Job:
    """Record a failed attempt.

    With `retry_at` and attempts to spare the job is queued again for that time; without
    `retry_at` (a permanent error) or with its attempts spent it ends `failed`, where
    `failed_jobs` and `pmguard jobs --failed` show it.
    """
    job = _locked(session, job_id)
    job.last_error = _clip(error)
    if retry_at is not None and job.attempts < job.max_attempts:
        job.status = "queued"
        job.next_attempt_at = retry_at
    else:
        job.status = "failed"
        job.next_attempt_at = None
        job.finished_at = utcnow()
    session.flush()
    return job


def requeue_job(session: Session, job_id: int, retry_at: datetime | None = None) -> Job:
    """Put a started job back in the queue without spending an attempt.

    For a job that could not begin its work (another job holds the incident's lock):
    that is waiting, not failing, so it must not bring the job closer to `failed`.
    """
    job = _locked(session, job_id)
    if job.status != "running":
        raise JobStateError(f"job {job_id} is {job.status}, not running")
    job.status = "queued"
    job.attempts = max(0, job.attempts - 1)
    job.next_attempt_at = retry_at or utcnow()
    session.flush()
    return job


def retry_job(session: Session, job_id: int, *, force: bool = False) -> Job:
    """Queue the job again now with a fresh attempt budget (CLI and dashboard "retry").

    A running job is refused unless `force`: retrying it would run it twice at once.
    """
    job = _locked(session, job_id)
    if job.status == "running" and not force:
        raise JobStateError(f"job {job_id} is running; pass force=True if its worker died")
    job.status = "queued"
    job.attempts = 0
    job.next_attempt_at = utcnow()
    job.finished_at = None
    session.flush()
    return job


def failed_jobs(session: Session, limit: int | None = None) -> list[Job]:
    """Failed jobs, most recently failed first."""
    query = select(Job).where(Job.status == "failed").order_by(Job.updated_at.desc(), Job.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def recent_jobs(session: Session, limit: int = 50) -> list[Job]:
    """The newest jobs in any state, newest first."""
    return list(session.scalars(select(Job).order_by(Job.id.desc()).limit(limit)))


def first_job_at(session: Session) -> datetime | None:
    """When the store recorded its first job: how far back this service has been
    watching (the job ids grow with time, so the oldest is the lowest)."""
    return session.scalar(select(Job.created_at).order_by(Job.id).limit(1))


def orphaned_jobs(session: Session) -> list[Job]:
    """Running jobs whose worker process, on this host, is gone (killed, crashed): a
    restarted worker takes them back at once instead of waiting out `pending_jobs`'s age."""
    running = session.scalars(select(Job).where(Job.status == "running", Job.owner.is_not(None)))
    return [job for job in running if process_gone(job.owner)]


def pending_jobs(session: Session, older_than: datetime) -> list[Job]:
    """Jobs that should have been picked up by `older_than` but are not finished.

    Queued jobs due by then (their retry time, or their last change when not scheduled)
    and running jobs untouched since then: what a restarted worker re-enqueues after a
    crash. Choose `older_than` further back than the longest job runs, or a job still
    running elsewhere will be started twice.
    """
    due = func.coalesce(Job.next_attempt_at, Job.updated_at)
    query = (
        select(Job)
        .where(
            or_(
                and_(Job.status == "queued", due <= older_than),
                and_(Job.status == "running", Job.updated_at <= older_than),
            )
        )
        .order_by(Job.id)
    )
    return list(session.scalars(query))


def _locked(session: Session, job_id: int) -> Job:
    # FOR UPDATE on PostgreSQL so two workers cannot both move one job; SQLite has no
    # row locks and needs none (store.db starts every transaction holding the write lock).
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise LookupError(f"no job {job_id}")
    return job


def _clip(error: str) -> str:
    if len(error) <= MAX_ERROR_CHARS:
        return error
    half = MAX_ERROR_CHARS // 2
    return f"{error[:half]}\n[... {len(error) - 2 * half} characters cut ...]\n{error[-half:]}"
