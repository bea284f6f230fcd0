"""impact budget: what each donor was told of a campaign's milestones, and what waits

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 12:00:00

Written by hand. Each donor of a campaign gets at most one impact email in a period; these
columns keep the count their last impact email stated, when it was queued, the milestone held
for the next one (JSON) and when it is due. Donors already told of milestones start from the
count their newest impact email stated, so none is told the same again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the impact columns to donors, filled from the impact emails already queued."""
    with op.batch_alter_table("donors") as batch:
        batch.add_column(
            sa.Column("impact_told_meals", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("impact_last_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("impact_held", sa.Text(), nullable=True))
        batch.add_column(sa.Column("impact_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_donors_impact_due_at", ["impact_due_at"])
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT campaign_id, lower(recipient) AS email, milestone, max(created_at) AS last_at"
            " FROM deliveries WHERE kind = 'impact' AND milestone LIKE 'meals-%'"
            " GROUP BY campaign_id, lower(recipient), milestone"
        )
    ).all()
    told: dict[tuple[str, str], tuple[int, object]] = {}
    for row in rows:
        meals = int(row.milestone.removeprefix("meals-"))
        key = (row.campaign_id, row.email)
        if key not in told or meals > told[key][0]:
            told[key] = (meals, row.last_at)
    for (campaign_id, email), (meals, last_at) in told.items():
        bind.execute(
            sa.text(
                "UPDATE donors SET impact_told_meals = :meals, impact_last_at = :last_at"
                " WHERE campaign_id = :campaign_id AND email = :email"
            ),
            {"meals": meals, "last_at": last_at, "campaign_id": campaign_id, "email": email},
        )


def downgrade() -> None:
    """Drop the impact columns."""
    with op.batch_alter_table("donors") as batch:
        batch.drop_index("ix_donors_impact_due_at")
        batch.drop_column("impact_due_at")
        batch.drop_column("impact_held")
        batch.drop_column("impact_last_at")
        batch.drop_column("impact_told_meals")
