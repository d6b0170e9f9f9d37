"""users.session_generation: signing out ends the session on the server.

A session cookie names the generation it was opened under; signing out (or changing the
password) moves it on, and older cookies stop loading the user.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, nullable and filled here: a NOT NULL column would need a server
    # default (models set values in Python) or, on SQLite, a batch rebuild of `users`,
    # whose DROP TABLE cascades to every API token while foreign keys are enforced.
    op.add_column("users", sa.Column("session_generation", sa.Integer(), nullable=True))
    op.execute("UPDATE users SET session_generation = 0")


def downgrade() -> None:
    # SQLite (3.35+) drops a column in place: no rebuild, so no cascade to api_tokens.
    op.drop_column("users", "session_generation")
