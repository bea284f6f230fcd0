"""company difts: what the service keeps of each dift, dift deliveries and bounces, an outbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:00:00

Written by hand. `difts` keeps what a company dift's invitation, reminder and confirmation
state and when its reminder is due; deliveries name the dift and programme they are about,
the moment after which they must not go, and may be "bounced" (a dift's invitation or reminder
refused for good); one email of each kind per dift. The service now publishes events
(difts.notification.dift_invitation_sent.v1), through the shared outbox table, whose
committed rows wake the relay on PostgreSQL (LISTEN difts_outbox).

SQLite cannot alter a CHECK constraint: batch mode copies the deliveries table, and its partial
indexes are dropped and recreated around the copy so none can lose its WHERE clause (as 0002
does). The trigger of 0006 is PostgreSQL's, where batch mode alters the table in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.shared.outbox import OUTBOX_CHANNEL
from services.shared.wake import notify_on_insert

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CREATE_TRIGGER, DROP_TRIGGER = notify_on_insert("outbox", OUTBOX_CHANNEL)

_STATUSES_BEFORE = "status IN ('pending', 'sent', 'failed', 'skipped')"
_STATUSES = "status IN ('pending', 'sent', 'failed', 'skipped', 'bounced')"
# The partial indexes of deliveries (name, columns, WHERE), as 0002 made them.
_PARTIAL = (
    ("ix_deliveries_due", ["next_attempt_at"], "status = 'pending'", False),
    ("uq_deliveries_one_receipt", ["donation_id", "recipient"], "kind = 'receipt'", True),
    ("uq_deliveries_one_news", ["campaign_id", "post_id", "recipient"], "kind = 'news'", True),
    (
        "uq_deliveries_one_impact",
        ["campaign_id", "milestone", "recipient"],
        "kind = 'impact'",
        True,
    ),
)


def _create_partial_indexes() -> None:
    for name, columns, where, unique in _PARTIAL:
        op.create_index(
            name,
            "deliveries",
            columns,
            unique=unique,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )


def _drop_partial_indexes() -> None:
    for name, _columns, _where, _unique in _PARTIAL:
        op.drop_index(name, table_name="deliveries")


def upgrade() -> None:
    """Add difts, the dift columns and the bounced status of deliveries, and the outbox."""
    op.create_table(
        "difts",
        sa.Column("dift_id", sa.String(200), nullable=False),
        sa.Column("programme_id", sa.String(200), nullable=False),
        sa.Column("brand_name", sa.Text(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("recipient_email", sa.String(320), nullable=True),
        sa.Column("recipient_name", sa.String(200), nullable=True),
        sa.Column("recipient_locale", sa.String(35), nullable=True),
        sa.Column("redeem_url", sa.Text(), nullable=True),
        sa.Column("shortlist", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminder_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled", sa.String(16), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "settled IN ('directed', 'expired')", name=op.f("ck_difts_settled")
        ),
        sa.PrimaryKeyConstraint("dift_id", name=op.f("pk_difts")),
    )
    op.create_index("ix_difts_reminder_due_at", "difts", ["reminder_due_at"])
    op.create_index("ix_difts_recipient_email", "difts", ["recipient_email"])

    _drop_partial_indexes()
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("dift_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("programme_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("not_after", sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint(op.f("ck_deliveries_status"), type_="check")
        batch.create_check_constraint(op.f("ck_deliveries_status"), sa.text(_STATUSES))
    _create_partial_indexes()
    where = sa.text("dift_id IS NOT NULL")
    op.create_index(
        "uq_deliveries_one_per_dift",
        "deliveries",
        ["dift_id", "kind"],
        unique=True,
        postgresql_where=where,
        sqlite_where=where,
    )

    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    unpublished = sa.text("published_at IS NULL")
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        postgresql_where=unpublished,
        sqlite_where=unpublished,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CREATE_TRIGGER)


def downgrade() -> None:
    """Back to 0006 (dift deliveries, difts and unpublished events are dropped: relay the
    outbox before downgrading)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DROP_TRIGGER)
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.drop_table("outbox")
    op.execute("DELETE FROM deliveries WHERE dift_id IS NOT NULL OR status = 'bounced'")
    op.drop_index("uq_deliveries_one_per_dift", table_name="deliveries")
    _drop_partial_indexes()
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint(op.f("ck_deliveries_status"), type_="check")
        batch.create_check_constraint(op.f("ck_deliveries_status"), sa.text(_STATUSES_BEFORE))
        batch.drop_column("not_after")
        batch.drop_column("programme_id")
        batch.drop_column("dift_id")
    _create_partial_indexes()
    op.drop_index("ix_difts_recipient_email", table_name="difts")
    op.drop_index("ix_difts_reminder_due_at", table_name="difts")
    op.drop_table("difts")
