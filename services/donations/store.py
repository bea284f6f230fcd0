"""The donations database: tables, and the queries the handlers and views need."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    update,
)

from services.shared.consumer import processed_events_table
from services.shared.db import insert_if_absent
from services.shared.money import Money
from services.shared.outbox import outbox_table

from .domain import Campaign, CampaignStatus, DonationStatus

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
)

outbox = outbox_table(metadata)
processed = processed_events_table(metadata)


def _campaign(row: Any) -> Campaign:
    return Campaign(
        id=row.id,
        slug=row.slug,
        title=row.title,
        cause=row.cause,
        meal_price=Money(row.meal_price, row.currency),
        goal_meals=row.goal_meals,
        status=CampaignStatus(row.status),
    )


def campaign_by_slug(conn: Connection, slug: str) -> Campaign | None:
    """The campaign with this slug, if any."""
    row = conn.execute(select(campaigns).where(campaigns.c.slug == slug)).first()
    return _campaign(row) if row else None


def campaign_by_id(conn: Connection, campaign_id: str) -> Campaign | None:
    """The campaign with this id, if any."""
    row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
    return _campaign(row) if row else None


def donation_row(conn: Connection, donation_id: str) -> Any | None:
    """The stored donation, if any."""
    return conn.execute(select(donations).where(donations.c.id == donation_id)).first()


def mark_succeeded(
    conn: Connection, donation_id: str, payment_intent_id: str | None, when: datetime
) -> bool:
    """Move a pending donation to succeeded; False if it was not pending (so nothing
    downstream can be told twice)."""
    result = conn.execute(
        update(donations)
        .where(donations.c.id == donation_id, donations.c.status == DonationStatus.PENDING.value)
        .values(
            status=DonationStatus.SUCCEEDED.value,
            succeeded_at=when,
            payment_intent_id=payment_intent_id,
        )
    )
    return result.rowcount == 1


def record_stripe_event(conn: Connection, event_id: str, event_type: str, when: datetime) -> bool:
    """Remember a Stripe event id; False if it was seen before (a webhook retry)."""
    row = {"id": event_id, "type": event_type, "outcome": "received", "received_at": when}
    return insert_if_absent(conn, stripe_events, row, key="id")


def set_stripe_event_outcome(
    conn: Connection,
    event_id: str,
    outcome: str,
    donation_id: str | None,
    payload: str | None = None,
) -> None:
    """Say what became of a Stripe event (and keep its payload if it must wait)."""
    conn.execute(
        update(stripe_events)
        .where(stripe_events.c.id == event_id)
        .values(outcome=outcome, donation_id=donation_id, payload=payload)
    )
