"""deliveries.body_sha256: a replayed body is a redelivery, whatever delivery id it has.

The delivery id header is not covered by the webhook signature, so a captured delivery
sent again with a new id used to make a new job. The SHA-256 of the signed body, unique
per source, catches that in the same single insert (ON CONFLICT DO NOTHING). Rows from
before have no hash; null never collides.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A unique index rather than a constraint: SQLite creates it in place, no rebuild.
    op.add_column("deliveries", sa.Column("body_sha256", sa.String(64), nullable=True))
    op.create_index(
        "ix_deliveries_source_body_sha256", "deliveries", ["source", "body_sha256"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_source_body_sha256", table_name="deliveries")
    op.drop_column("deliveries", "body_sha256")
