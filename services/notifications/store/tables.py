"""The notifications tables: the donor projection, what the service knows of each campaign
and of each company dift, the delivery log (which is also the email outbox), the outbox of
the events the service publishes, and the processed-event ids."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from services.shared.consumer import processed_events_table
from services.shared.db import service_metadata
from services.shared.outbox import outbox_table

from ..domain import DeliveryStatus, Kind

metadata = service_metadata()

# What PostgreSQL notifies when deliveries are committed (a trigger of migration 0006), so the
# sender wakes at once instead of at its next poll (services/shared/wake.py).
DELIVERIES_CHANNEL = "difts_deliveries"

PENDING, SENT, FAILED, SKIPPED, BOUNCED = (status.value for status in DeliveryStatus)
STATUSES = tuple(status.value for status in DeliveryStatus)
RECEIPT, REFUND, NEWS, IMPACT, DIFT_INVITATION, DIFT_REMINDER, DIFT_CONFIRMATION = (
    kind.value for kind in Kind
)
KINDS = tuple(kind.value for kind in Kind)

donors = Table(
    "donors",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("campaign_id", String(200), nullable=False),
    # Lower-cased, so one person giving twice with different capitals is one donor.
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False),
    Column("locale", String(35), nullable=False),
    Column("updates_opt_in", Boolean, nullable=False),
    Column("consent_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # 0002: where consent came from, when the donor unsubscribed from this campaign, and the
    # pseudonym of the address that unsubscribe links and erasure requests name.
    Column("consent_source", String(32), nullable=True),
    Column("unsubscribed_at", DateTime(timezone=True), nullable=True),
    Column("email_ref", String(64), nullable=True),
    # 0004: the impact budget (domain.ImpactState): the count the donor's last impact email
    # stated and when it was queued, the milestone held for the next one (JSON), when it is due.
    Column("impact_told_meals", Integer, nullable=False, server_default="0"),
    Column("impact_last_at", DateTime(timezone=True), nullable=True),
    Column("impact_held", Text, nullable=True),
    Column("impact_due_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("campaign_id", "email"),
    Index("ix_donors_email_ref", "email_ref"),
    Index("ix_donors_impact_due_at", "impact_due_at"),
)

# A donor who unsubscribed from every campaign, by pseudonym only: kept after an erasure, so
# the address stays suppressed until a new gift with consent.
unsubscribed_everywhere = Table(
    "unsubscribed_everywhere",
    metadata,
    Column("email_ref", String(64), primary_key=True),
    Column("unsubscribed_at", DateTime(timezone=True), nullable=False),
)

# What the service knows of each campaign, for the words of its emails.
campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String(200), primary_key=True),
    Column("slug", String(200), nullable=False),
    Column("title", Text, nullable=False),
    Column("cause", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("event_id", String(200), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("campaign_id", String(200), nullable=False),
    Column("donation_id", String(200), nullable=True),
    Column("subject", Text, nullable=False),
    Column("message_id", String(255), nullable=True),
    # The whole RFC 5322 message as it goes on the wire (ASCII: headers and bodies encoded);
    # empty for a delivery skipped before a message could be built.
    Column("message", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    # 0002: the news post or milestone an email is about, and the recipient's pseudonym,
    # which is all that is left of the address after an erasure.
    Column("post_id", String(200), nullable=True),
    Column("milestone", String(100), nullable=True),
    Column("recipient_ref", String(64), nullable=True),
    # 0007: the company dift an email is about (its invitation, reminder, confirmation) and
    # its programme, and the moment after which it must not go (the dift's expiry).
    Column("dift_id", String(200), nullable=True),
    Column("programme_id", String(200), nullable=True),
    Column("not_after", DateTime(timezone=True), nullable=True),
    CheckConstraint("status IN ('pending', 'sent', 'failed', 'skipped', 'bounced')", name="status"),
    UniqueConstraint("event_id", "recipient", "kind"),
    # One receipt per donation and recipient, even if a donation were announced twice (a
    # donation may have several refunds, so this holds for receipts only).
    Index(
        "uq_deliveries_one_receipt",
        "donation_id",
        "recipient",
        unique=True,
        postgresql_where=text("kind = 'receipt'"),
        sqlite_where=text("kind = 'receipt'"),
    ),
    # One email per news post and recipient, even if the post were announced twice.
    Index(
        "uq_deliveries_one_news",
        "campaign_id",
        "post_id",
        "recipient",
        unique=True,
        postgresql_where=text("kind = 'news'"),
        sqlite_where=text("kind = 'news'"),
    ),
    # At most one impact email per donor and milestone.
    Index(
        "uq_deliveries_one_impact",
        "campaign_id",
        "milestone",
        "recipient",
        unique=True,
        postgresql_where=text("kind = 'impact'"),
        sqlite_where=text("kind = 'impact'"),
    ),
    # One email of each kind per dift (invitation, reminder, confirmation), whatever is
    # redelivered or announced twice.
    Index(
        "uq_deliveries_one_per_dift",
        "dift_id",
        "kind",
        unique=True,
        postgresql_where=text("dift_id IS NOT NULL"),
        sqlite_where=text("dift_id IS NOT NULL"),
    ),
    Index("ix_deliveries_donation_id", "donation_id"),
    Index("ix_deliveries_post_id", "post_id"),
    Index("ix_deliveries_recipient_ref", "recipient_ref"),
    Index(
        "ix_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
)

# What this service keeps of each company dift (domain.Dift): whom to write to, the value and
# the shortlist's meal prices (JSON), the expiry; the personal link only until no reminder
# can need it; when the reminder is due; how the dift ended.
difts = Table(
    "difts",
    metadata,
    Column("dift_id", String(200), primary_key=True),
    Column("programme_id", String(200), nullable=False),
    Column("brand_name", Text, nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("recipient_email", String(320), nullable=True),
    Column("recipient_name", String(200), nullable=True),
    Column("recipient_locale", String(35), nullable=True),
    Column("redeem_url", Text, nullable=True),
    Column("shortlist", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("reminder_due_at", DateTime(timezone=True), nullable=True),
    Column("settled", String(16), nullable=True),
    Column("settled_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("settled IN ('directed', 'expired')", name="settled"),
    Index("ix_difts_reminder_due_at", "reminder_due_at"),
    Index("ix_difts_recipient_email", "recipient_email"),
)

outbox = outbox_table(metadata)
processed = processed_events_table(metadata)
