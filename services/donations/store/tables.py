"""The donations database's tables (SQLite for make run, PostgreSQL in tests and production;
migrations/ creates them)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

from services.shared.consumer import processed_events_table
from services.shared.outbox import outbox_table

from ..domain.donations import REFUND_COUNTED

metadata = MetaData()

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("slug", String(100), nullable=False, unique=True),
    Column("title", String(300), nullable=False),
    Column("cause", String(300), nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("currency", String(3), nullable=False),
    Column("meal_price", Integer, nullable=False),
    Column("goal_meals", Integer, nullable=True),
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("cause_certified", Boolean, nullable=False, server_default=false()),
    Column("action_zone", String(200), nullable=False, server_default=""),
    Column("story_markdown", Text, nullable=False, server_default=""),
    # The list of what the money is used for, as a JSON array of strings.
    Column("money_uses", Text, nullable=False, server_default="[]"),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
)

# A live campaign's meal price changes only from a date on: the price in force at a moment is
# the latest change that took effect by then, else campaigns.meal_price.
meal_price_changes = Table(
    "meal_price_changes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False, index=True),
    Column("meal_price", Integer, nullable=False),
    Column("previous_meal_price", Integer, nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

news_posts = Table(
    "news_posts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False, index=True),
    Column("title", String(300), nullable=False),
    Column("body_markdown", Text, nullable=False),
    Column("locale", String(10), nullable=False, server_default="fr"),
    # Set for a post scheduled for later; the worker publishes it when due.
    Column("publish_at", DateTime(timezone=True), nullable=True),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Lets seed-demo recreate nothing when run twice.
    Column("seed_key", String(100), nullable=True, unique=True),
)

# The ledger's count of meals funded, kept from its meals_funded events for the donor pages.
campaign_meals = Table(
    "campaign_meals",
    metadata,
    Column("campaign_id", String(36), primary_key=True),
    Column("meals_funded", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One row per Stripe refund id: charge.refunded and refund.* describe the same refund, and it
# must be counted once. `status` is "counted" (pending or succeeded at Stripe: in the
# donation's amount_refunded) or "failed" (failed or canceled at Stripe: counts nothing, now
# or later, whichever order its events come in).
refunds = Table(
    "refunds",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("donation_id", String(36), ForeignKey("donations.id"), nullable=False, index=True),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False, server_default=REFUND_COUNTED),
    Column("failed_at", DateTime(timezone=True), nullable=True),
)

disputes = Table(
    "disputes",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("donation_id", String(36), ForeignKey("donations.id"), nullable=False, index=True),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(20), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
)

payouts = Table(
    "payouts",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("paid_at", DateTime(timezone=True), nullable=False),
)

donations = Table(
    "donations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("campaign_id", String(36), ForeignKey("campaigns.id"), nullable=False, index=True),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("meals", Integer, nullable=False),
    Column("donor_email", String(320), nullable=False),
    Column("donor_name", String(200), nullable=False),
    Column("locale", String(10), nullable=False),
    Column("updates_opt_in", Boolean, nullable=False),
    Column("consent_at", DateTime(timezone=True), nullable=True),
    Column("status", String(20), nullable=False),
    Column("checkout_session_id", String(255), nullable=True, unique=True),
    Column("checkout_url", Text, nullable=True),
    Column("payment_intent_id", String(255), nullable=True),
    Column("correlation_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("succeeded_at", DateTime(timezone=True), nullable=True),
    Column("anonymous", Boolean, nullable=False, server_default=false()),
    Column("public_message", Text, nullable=True),
    Column("show_message", Boolean, nullable=False, server_default=false()),
    Column("fee_covered", Integer, nullable=False, server_default="0"),
    Column("charge_id", String(255), nullable=True, index=True),
    Column("balance_transaction_id", String(255), nullable=True),
    Column("fee", Integer, nullable=True),
    Column("net", Integer, nullable=True),
    Column("amount_refunded", Integer, nullable=False, server_default="0"),
    # What an Idempotency-Key request asked for, so a retry with other content is refused.
    Column("request_fingerprint", String(64), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
)

# Every Stripe event we accepted, by Stripe's id: the webhook's deduplication and audit trail.
stripe_events = Table(
    "stripe_events",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("outcome", String(40), nullable=False),
    Column("donation_id", String(36), nullable=True, index=True),
    # Kept only for events we could not apply yet, so they can be applied later.
    Column("payload", Text, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # For an event that must wait: what it waits for (a donation, payment intent or charge).
    Column("waiting_for", String(255), nullable=True, index=True),
    # 0004: for an event kept as unreadable, what is wrong with it.
    Column("problem", Text, nullable=True),
    # 0006: a received event is applied by the worker after the webhook answered; the applier
    # that claimed it holds it until then (a crashed one's claim runs out), and the request's
    # correlation id travels on to the events it publishes.
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Column("correlation_id", String(64), nullable=True),
    # 0006: what the applier and the kept-events round look for, oldest first.
    Index("ix_stripe_events_outcome_received_at", "outcome", "received_at"),
)

outbox = outbox_table(metadata)
processed = processed_events_table(metadata)
