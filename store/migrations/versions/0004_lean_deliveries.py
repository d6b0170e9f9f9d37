"""Deliveries keep only the indexes the webhook path needs.

The webhook's one durable write touches every index on `deliveries` and `jobs`, and each
touched index is one more page written and fsynced per commit. Nothing reads deliveries
by incident or by time (they exist for deduplication, which the unique key on source and
delivery id serves), so those two indexes go.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_incident_id", table_name="deliveries")
    op.drop_index("ix_deliveries_received_at", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_received_at", "deliveries", ["received_at"])
    op.create_index("ix_deliveries_incident_id", "deliveries", ["incident_id"])
