"""A verdict of its own for a postmortem that could not be analysed.

"unchecked": the postmortem was read but is over the size limits or ran past the analysis
time budget. Before, such a check raised, retried as transient and ended as a failed job
with no comment and no label.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "'missing', 'needs-review', 'ok', 'waived', 'check-failed'"
NEW = "'missing', 'needs-review', 'unchecked', 'ok', 'waived', 'check-failed'"
TABLES = ("incidents", "analyses")
# 0001 named its constraints with the naming convention applied twice; the models' name is
# the single one.
DOUBLED = "ck_{table}_ck_{table}_verdict"


def _replace(old_name: str, new_name: str, allowed: str) -> None:
    for table in TABLES:
        # batch mode: SQLite cannot alter a constraint and rebuilds the table instead.
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(old_name.format(table=table)), type_="check")
            batch.create_check_constraint(
                op.f(new_name.format(table=table)), f"verdict IN ({allowed})"
            )


def upgrade() -> None:
    _replace(DOUBLED, "ck_{table}_verdict", NEW)


def downgrade() -> None:
    op.execute("UPDATE incidents SET verdict = 'needs-review' WHERE verdict = 'unchecked'")
    op.execute("UPDATE analyses SET verdict = 'needs-review' WHERE verdict = 'unchecked'")
    _replace("ck_{table}_verdict", DOUBLED, OLD)
