"""receipts wait for the ledger: bookings and held receipts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 02:35:00

Written by hand. `bookings` keeps the meals the ledger says each gift funded
(difts.ledger.donation_booked.v1); `held_receipts` keeps a succeeded donation's event data
for a few seconds while its booking is on its way, so the receipt states the ledger's count.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add bookings and held receipts."""
    op.create_table(
        "bookings",
        sa.Column("donation_id", sa.String(200), nullable=False),
        sa.Column("campaign_id", sa.String(200), nullable=False),
        sa.Column("meals", sa.Integer(), nullable=False),
        sa.Column("remainder", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("donation_id", name=op.f("pk_bookings")),
    )
    op.create_index("ix_bookings_campaign_id", "bookings", ["campaign_id"])
    op.create_table(
        "held_receipts",
        sa.Column("donation_id", sa.String(200), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("campaign_id", sa.String(200), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("donation_id", name=op.f("pk_held_receipts")),
    )
    op.create_index("ix_held_receipts_release_at", "held_receipts", ["release_at"])


def downgrade() -> None:
    """Back to 0002 (held receipts are lost: release them before downgrading)."""
    op.drop_index("ix_held_receipts_release_at", table_name="held_receipts")
    op.drop_table("held_receipts")
    op.drop_index("ix_bookings_campaign_id", table_name="bookings")
    op.drop_table("bookings")
