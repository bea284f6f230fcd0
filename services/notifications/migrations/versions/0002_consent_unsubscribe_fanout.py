"""consent source, unsubscribes, campaigns, news and impact deliveries, pseudonyms

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:20:00

Written by hand. The receipt-only unique constraint (kind, donation_id, recipient) becomes a
partial unique index on receipts, since one donation may have several refund emails; news
and impact emails get their own partial unique indexes. SQLite needs batch mode to drop a
constraint, and the partial due-index is dropped and recreated around it so the copy of the
table cannot lose its WHERE clause.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    """Add consent and unsubscribe facts, campaigns, and the news/impact delivery columns."""
    with op.batch_alter_table("donors") as batch:
        batch.add_column(sa.Column("consent_source", sa.String(32), nullable=True))
        batch.add_column(sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("email_ref", sa.String(64), nullable=True))
    op.create_index("ix_donors_email_ref", "donors", ["email_ref"])
    # Consent recorded before this revision came with a gift at checkout.
    op.execute(
        "UPDATE donors SET consent_source = 'checkout' "
        "WHERE consent_at IS NOT NULL AND consent_source IS NULL"
    )

    op.create_table(
        "unsubscribed_everywhere",
        sa.Column("email_ref", sa.String(64), nullable=False),
        sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email_ref", name=op.f("pk_unsubscribed_everywhere")),
    )
    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.String(200), nullable=False),
        sa.Column("slug", sa.String(200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaigns")),
    )

    op.drop_index("ix_deliveries_due", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_kind_donation_id_recipient", type_="unique")
        batch.add_column(sa.Column("post_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("milestone", sa.String(100), nullable=True))
        batch.add_column(sa.Column("recipient_ref", sa.String(64), nullable=True))
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    for name, columns, kind in (
        ("uq_deliveries_one_receipt", ["donation_id", "recipient"], "receipt"),
        ("uq_deliveries_one_news", ["campaign_id", "post_id", "recipient"], "news"),
        ("uq_deliveries_one_impact", ["campaign_id", "milestone", "recipient"], "impact"),
    ):
        where = sa.text(f"kind = '{kind}'")
        op.create_index(
            name,
            "deliveries",
            columns,
            unique=True,
            postgresql_where=where,
            sqlite_where=where,
        )
    op.create_index("ix_deliveries_post_id", "deliveries", ["post_id"])
    op.create_index("ix_deliveries_recipient_ref", "deliveries", ["recipient_ref"])


def downgrade() -> None:
    """Back to 0001 (refund, news and impact rows are dropped: 0001 cannot hold them)."""
    op.execute("DELETE FROM deliveries WHERE kind <> 'receipt'")
    for name in (
        "ix_deliveries_recipient_ref",
        "ix_deliveries_post_id",
        "uq_deliveries_one_impact",
        "uq_deliveries_one_news",
        "uq_deliveries_one_receipt",
        "ix_deliveries_due",
    ):
        op.drop_index(name, table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("recipient_ref")
        batch.drop_column("milestone")
        batch.drop_column("post_id")
        batch.create_unique_constraint(
            "uq_deliveries_kind_donation_id_recipient", ["kind", "donation_id", "recipient"]
        )
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.drop_table("campaigns")
    op.drop_table("unsubscribed_everywhere")
    op.drop_index("ix_donors_email_ref", table_name="donors")
    with op.batch_alter_table("donors") as batch:
        batch.drop_column("email_ref")
        batch.drop_column("unsubscribed_at")
        batch.drop_column("consent_source")
