"""Per-incident leases in the database, shared by every worker process on every host.

A lease expires, so a worker killed while holding one blocks its incident for at most the
lease; on the same host a lease whose process is gone is taken over at once.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from store.models import IncidentLock
from store.types import utcnow

LEASE = timedelta(minutes=5)  # far longer than one check; a retry is a new job run
HOST = socket.gethostname()


def worker_id() -> str:
    """This process: "host:pid"."""
    return f"{HOST}:{os.getpid()}"


def new_owner() -> str:
    return f"{worker_id()}:{uuid.uuid4().hex[:12]}"


def process_gone(owner: str | None) -> bool:
    """True when `owner` names a process on this host that no longer runs."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid = rest.split(":", 1)[0]
    if host != HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def acquire(engine: Engine, incident_id: str, owner: str, lease: timedelta = LEASE) -> bool:
    now = utcnow()
    with engine.begin() as conn:
        row = conn.execute(
            select(IncidentLock.owner, IncidentLock.expires_at)
            .where(IncidentLock.incident_id == incident_id)
            .with_for_update()
        ).first()
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        IncidentLock.__table__.insert().values(
                            incident_id=incident_id, owner=owner, expires_at=now + lease
                        )
                    )
            except IntegrityError:  # another worker inserted it first
                return False
            return True
        if row.owner == owner or row.expires_at < now or process_gone(row.owner):
            conn.execute(
                IncidentLock.__table__.update()
                .where(IncidentLock.incident_id == incident_id)
                .values(owner=owner, expires_at=now + lease)
            )
            return True
        return False


def release(engine: Engine, incident_id: str, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            delete(IncidentLock).where(
                IncidentLock.incident_id == incident_id, IncidentLock.owner == owner
            )
        )
