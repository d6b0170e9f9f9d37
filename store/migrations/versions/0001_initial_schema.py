"""Initial schema: deliveries, incidents, postmortems, analyses, findings, audit log,
jobs and rule-pack versions.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Written out in full rather than importing store.models: a revision must keep creating
the schema as it was when written, whatever the models become later.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 512  # store.models.ID_LENGTH when this revision was written
VERDICTS = "'missing', 'needs-review', 'ok', 'waived', 'check-failed'"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        _ts("at"),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(64), nullable=False),
        sa.Column("target_id", sa.String(ID), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_target_type_target_id", "audit_log", ["target_type", "target_id"])

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("delivery_id", sa.String(255), nullable=False),
        sa.Column("event", sa.String(128), nullable=False),
        _ts("received_at"),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("incident_id", sa.String(ID), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('enqueued', 'ignored', 'rejected')", name="ck_deliveries_outcome"
        ),
        sa.CheckConstraint("source IN ('github', 'jira')", name="ck_deliveries_source"),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("source", "delivery_id", name="uq_deliveries_source_delivery_id"),
    )
    op.create_index("ix_deliveries_incident_id", "deliveries", ["incident_id"])
    op.create_index("ix_deliveries_received_at", "deliveries", ["received_at"])

    op.create_table(
        "incidents",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("tracker", sa.String(16), nullable=False),
        sa.Column("site", sa.String(ID), nullable=False),
        sa.Column("project", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        _ts("closed_at", nullable=True),
        sa.Column("severity", sa.String(64), nullable=True),
        sa.Column("team", sa.String(255), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("comment_id", sa.String(255), nullable=True),
        _ts("last_checked_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("waived_by", sa.String(255), nullable=True),
        sa.Column("waived_reason", sa.Text(), nullable=True),
        _ts("waived_until", nullable=True),
        sa.CheckConstraint(f"verdict IN ({VERDICTS})", name="ck_incidents_verdict"),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    op.create_index("ix_incidents_closed_at", "incidents", ["closed_at"])
    op.create_index("ix_incidents_team", "incidents", ["team"])
    op.create_index("ix_incidents_tracker_project", "incidents", ["tracker", "project"])
    op.create_index("ix_incidents_verdict_closed_at", "incidents", ["verdict", "closed_at"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("incident_id", sa.String(ID), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("next_attempt_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("finished_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name="ck_jobs_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_incident_id", "jobs", ["incident_id"])
    op.create_index("ix_jobs_status_next_attempt_at", "jobs", ["status", "next_attempt_at"])
    op.create_index("ix_jobs_status_updated_at", "jobs", ["status", "updated_at"])

    op.create_table(
        "postmortems",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("tracker", sa.String(16), nullable=False),
        sa.Column("site", sa.String(ID), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("locator", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        _ts("first_seen_at"),
        sa.PrimaryKeyConstraint("id", name="pk_postmortems"),
    )

    op.create_table(
        "rule_pack_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rule_pack_versions"),
        sa.UniqueConstraint("name", "version", name="uq_rule_pack_versions_name_version"),
    )
    op.create_index("ix_rule_pack_versions_name_active", "rule_pack_versions", ["name", "active"])

    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.String(ID), nullable=False),
        sa.Column("postmortem_id", sa.String(ID), nullable=True),
        _ts("created_at"),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("pack_name", sa.String(128), nullable=False),
        sa.Column("pack_version", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("action_items", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.CheckConstraint(f"verdict IN ({VERDICTS})", name="ck_analyses_verdict"),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name="fk_analyses_incident_id_incidents",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["postmortem_id"],
            ["postmortems.id"],
            name="fk_analyses_postmortem_id_postmortems",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_analyses"),
    )
    op.create_index("ix_analyses_created_at", "analyses", ["created_at"])
    op.create_index("ix_analyses_incident_id_id", "analyses", ["incident_id", "id"])
    op.create_index("ix_analyses_postmortem_id", "analyses", ["postmortem_id"])

    op.create_table(
        "incident_postmortems",
        sa.Column("incident_id", sa.String(ID), nullable=False),
        sa.Column("postmortem_id", sa.String(ID), nullable=False),
        _ts("linked_at"),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name="fk_incident_postmortems_incident_id_incidents",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["postmortem_id"],
            ["postmortems.id"],
            name="fk_incident_postmortems_postmortem_id_postmortems",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("incident_id", "postmortem_id", name="pk_incident_postmortems"),
    )
    op.create_index(
        "ix_incident_postmortems_postmortem_id", "incident_postmortems", ["postmortem_id"]
    )

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("analysis_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("suggestion", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sentence", sa.Text(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=True),
        sa.Column("end", sa.Integer(), nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("column", sa.Integer(), nullable=True),
        sa.Column("end_line", sa.Integer(), nullable=True),
        sa.Column("end_column", sa.Integer(), nullable=True),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("decided_by", sa.String(255), nullable=True),
        _ts("decided_at", nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "decision IN ('accepted', 'false-positive')", name="ck_findings_decision"
        ),
        sa.ForeignKeyConstraint(
            ["analysis_id"],
            ["analyses.id"],
            name="fk_findings_analysis_id_analyses",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
    )
    op.create_index("ix_findings_analysis_id", "findings", ["analysis_id"])
    op.create_index("ix_findings_fingerprint", "findings", ["fingerprint"])
    op.create_index("ix_findings_rule_decision", "findings", ["rule", "decision"])


def downgrade() -> None:
    # Children before parents; dropping a table drops its indexes.
    for table in (
        "findings",
        "incident_postmortems",
        "analyses",
        "rule_pack_versions",
        "postmortems",
        "jobs",
        "incidents",
        "deliveries",
        "audit_log",
    ):
        op.drop_table(table)
