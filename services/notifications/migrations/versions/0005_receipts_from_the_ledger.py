"""receipts from the ledger: a receipt's one trigger is difts.ledger.donation_booked.v1

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 15:00:00

Written by hand. The ledger's booking now carries what the receipt states, so the receipt no
longer joins two services' events: the bookings kept for it and the receipts held while a
booking was on its way go. A receipt still held here when this runs is queued by nobody: the
upgrade note in the README says to let held receipts drain (NOTIFICATIONS_RECEIPT_WAIT
seconds with the worker running) before upgrading.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Drop the bookings and the held receipts."""
    op.drop_index("ix_held_receipts_release_at", table_name="held_receipts")
    op.drop_table("held_receipts")
    op.drop_index("ix_bookings_campaign_id", table_name="bookings")
    op.drop_table("bookings")


def downgrade() -> None:
    """Bring the tables back, empty."""
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
