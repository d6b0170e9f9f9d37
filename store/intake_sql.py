"""The webhook intake's two inserts, compiled once per engine and run on a DBAPI cursor.

The webhook path skips SQLAlchemy's per-execution machinery (connection wrapper, events,
result objects): at a few hundred microseconds a delivery it cost as much as the commit.
SQLAlchemy still writes the SQL and converts the typed values, through the types' own
bind processors, so rows are stored exactly as the ORM stores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Integer, String, bindparam, literal, select

from store.models import Delivery, Job
from store.types import UTCDateTime, utcnow


@dataclass(frozen=True)
class DeliveryRecord:
    """What a relevant delivery leaves behind: the delivery and the job it asks for."""

    source: str
    delivery_id: str
    event: str
    incident_id: str | None
    kind: str
    payload: Mapping[str, Any]
    max_attempts: int
    # SHA-256 (hex) of the signed body: the same body under another delivery id is a
    # redelivery too (the id is not signed). None when there is no body to go by.
    body_sha256: str | None = None


_deliveries = Delivery.__table__
_jobs = Job.__table__


def params_for(record: DeliveryRecord) -> dict[str, Any]:
    now = utcnow()
    return {
        "source": record.source, "delivery_id": record.delivery_id, "event": record.event,
        "body_sha256": record.body_sha256,
        "incident_id": record.incident_id, "kind": record.kind,
        "payload": dict(record.payload), "max_attempts": record.max_attempts, "now": now,
    }


def _delivery_values() -> dict[str, Any]:
    return {
        "source": bindparam("source", type_=String),
        "delivery_id": bindparam("delivery_id", type_=String),
        "event": bindparam("event", type_=String),
        "outcome": "enqueued",
        "incident_id": bindparam("incident_id", type_=String),
        "received_at": bindparam("now", type_=UTCDateTime),
        "body_sha256": bindparam("body_sha256", type_=String),
    }


def _job_values() -> dict[str, Any]:
    return {
        "kind": bindparam("kind", type_=String),
        "incident_id": bindparam("incident_id", type_=String),
        "payload": bindparam("payload", type_=_jobs.c.payload.type),
        "status": literal("queued"),
        "attempts": literal(0),
        "max_attempts": bindparam("max_attempts", type_=Integer),
        "created_at": bindparam("now", type_=UTCDateTime),
        "updated_at": bindparam("now", type_=UTCDateTime),
    }


class _Compiled:
    """One statement compiled once for a dialect, run on a DBAPI cursor."""

    def __init__(self, statement, dialect, typed: dict[str, Any]) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.order = compiled.positiontup if dialect.positional else None
        # Values bound by the statement itself (the literals), kept; ours are per call.
        every = compiled.construct_params(dict.fromkeys(typed))
        self.fixed = {k: v for k, v in every.items() if k not in typed}
        self.processors = {
            # The dialect's own variant of each type (PostgreSQL's JSON wraps for psycopg).
            name: type_.dialect_impl(dialect).bind_processor(dialect)
            for name, type_ in typed.items()
        }

    def params(self, values: dict[str, Any]) -> dict[str, Any] | list[Any]:
        bound = dict(self.fixed)
        for name, process in self.processors.items():
            value = values[name]
            bound[name] = process(value) if process is not None else value
        if self.order is None:
            return bound
        return [bound[name] for name in self.order]


class Statements:
    """The insert statements for one dialect, compiled once."""

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect
        self.postgresql = dialect.name == "postgresql"
        if self.postgresql:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        typed = {
            "source": String(), "delivery_id": String(), "event": String(),
            "body_sha256": String(), "incident_id": String(), "kind": String(),
            "payload": _jobs.c.payload.type, "max_attempts": Integer(), "now": UTCDateTime(),
        }
        delivery = (
            insert(_deliveries)
            .values(**_delivery_values())
            # No conflict target: a clash on either unique key, (source, delivery_id) or
            # (source, body_sha256), makes it a redelivery, in the same one statement.
            .on_conflict_do_nothing()
            .returning(_deliveries.c.id)
        )
        if self.postgresql:
            # One statement: the job row is selected from the delivery insert's RETURNING,
            # so a redelivery (no row returned) inserts no job.
            inserted = delivery.cte("inserted_delivery")
            values = _job_values()
            both = (
                insert(_jobs)
                .from_select(list(values), select(*values.values()).select_from(inserted))
                .returning(_jobs.c.id)
            )
            self.both = _Compiled(both, dialect, typed)
        else:
            self.delivery = _Compiled(delivery, dialect, {
                k: typed[k]
                for k in ("source", "delivery_id", "event", "body_sha256", "incident_id", "now")
            })
            self.job = _Compiled(
                insert(_jobs).values(**_job_values()).returning(_jobs.c.id), dialect,
                {k: typed[k] for k in ("kind", "incident_id", "payload", "max_attempts",
                                       "now")})

    def write(self, cursor, values: dict[str, Any]) -> int | None:
        if self.postgresql:
            cursor.execute(self.both.sql, self.both.params(values))
            row = cursor.fetchone()
            return None if row is None else row[0]
        cursor.execute(self.delivery.sql, self.delivery.params(values))
        if cursor.fetchone() is None:
            return None
        cursor.execute(self.job.sql, self.job.params(values))
        return cursor.fetchone()[0]
