"""Worker leases: which worker runs a job, and per-incident locks that expire.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner", sa.String(128), nullable=True))
    op.create_table(
        "incident_locks",
        sa.Column("incident_id", sa.String(512), nullable=False),
        sa.Column("owner", sa.String(160), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", name="pk_incident_locks"),
    )


def downgrade() -> None:
    op.drop_table("incident_locks")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("owner")
