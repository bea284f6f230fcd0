"""milestones reached: each campaign's milestones, so each is announced once (one event per
booking, however many it crosses)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 11:00:00

Until now a milestone was known as announced by its event in the outbox; the milestones of
those events are copied in, so none is announced again.
"""
import json
from datetime import UTC, datetime
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the table and fill it from the milestone events already queued."""
    table = op.create_table(
        'milestones_reached',
        sa.Column('campaign_id', sa.Text(), nullable=False),
        sa.Column('milestone', sa.String(length=40), nullable=False),
        sa.Column('reached_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('campaign_id', 'milestone', name=op.f('pk_milestones_reached')),
    )
    rows = op.get_bind().execute(
        sa.text("SELECT payload FROM outbox WHERE event_type = 'difts.ledger.milestone_reached.v1'")
    )
    seen: set[tuple[str, str]] = set()
    for (payload,) in rows:
        data = json.loads(payload)["data"]
        names = [part["milestone"] for part in data.get("milestones") or []] or [data["milestone"]]
        for name in names:
            seen.add((data["campaign_id"], name))
    if seen:
        now = datetime.now(UTC)
        op.bulk_insert(
            table, [{"campaign_id": c, "milestone": m, "reached_at": now} for c, m in sorted(seen)]
        )


def downgrade() -> None:
    """Drop the table (milestones are then known from the outbox only)."""
    op.drop_table('milestones_reached')
