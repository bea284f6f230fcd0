"""The donations database: tables, and the queries the handlers and views need."""

from __future__ import annotations

import json
from datetime import UTC, datetime
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
    false,
    select,
    update,
)

from services.shared.consumer import processed_events_table
from services.shared.db import insert_if_absent
from services.shared.money import Money
from services.shared.outbox import outbox_table

from .domain import ENDS_UNPAID_FROM, SUCCEEDS_FROM, Campaign, CampaignStatus, DonationStatus

metadata = MetaData()

REFUND_COUNTED = "counted"
REFUND_FAILED = "failed"

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
)

outbox = outbox_table(metadata)
processed = processed_events_table(metadata)


def _campaign(conn: Connection, row: Any, at: datetime | None = None) -> Campaign:
    price = meal_price_in_force(conn, row.id, at or datetime.now(UTC), row.meal_price)
    return Campaign(
        id=row.id,
        slug=row.slug,
        title=row.title,
        cause=row.cause,
        meal_price=Money(price, row.currency),
        goal_meals=row.goal_meals,
        status=CampaignStatus(row.status),
        cause_certified=bool(row.cause_certified),
        action_zone=row.action_zone or "",
        summary=row.summary or "",
        story_markdown=row.story_markdown or "",
        money_uses=tuple(json.loads(row.money_uses or "[]")),
    )


def meal_price_in_force(conn: Connection, campaign_id: str, at: datetime, base: int) -> int:
    """The meal price at `at`: the latest change that took effect by then, else `base`."""
    price = conn.execute(
        select(meal_price_changes.c.meal_price)
        .where(
            meal_price_changes.c.campaign_id == campaign_id,
            meal_price_changes.c.effective_from <= at,
        )
        .order_by(
            meal_price_changes.c.effective_from.desc(), meal_price_changes.c.created_at.desc()
        )
        .limit(1)
    ).scalar()
    return int(price) if price is not None else base


def campaign_by_slug(conn: Connection, slug: str) -> Campaign | None:
    """The campaign with this slug, if any."""
    row = conn.execute(select(campaigns).where(campaigns.c.slug == slug)).first()
    return _campaign(conn, row) if row else None


def campaign_by_id(conn: Connection, campaign_id: str) -> Campaign | None:
    """The campaign with this id, if any."""
    row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
    return _campaign(conn, row) if row else None


def meals_funded(conn: Connection, campaign_id: str) -> int:
    """The ledger's latest count of meals funded for a campaign (0 before its first event)."""
    value = conn.execute(
        select(campaign_meals.c.meals_funded).where(campaign_meals.c.campaign_id == campaign_id)
    ).scalar()
    return int(value or 0)


def published_posts(conn: Connection, campaign_id: str, limit: int = 50) -> list[Any]:
    """A campaign's published news posts, newest first."""
    return list(
        conn.execute(
            select(news_posts)
            .where(news_posts.c.campaign_id == campaign_id, news_posts.c.published_at.is_not(None))
            .order_by(news_posts.c.published_at.desc())
            .limit(limit)
        ).all()
    )


def post_row(conn: Connection, post_id: str) -> Any | None:
    """The stored news post, if any."""
    return conn.execute(select(news_posts).where(news_posts.c.id == post_id)).first()


def public_messages(conn: Connection, campaign_id: str, limit: int = 20) -> list[Any]:
    """Messages that donors of paid gifts allowed to be shown, newest first."""
    return list(
        conn.execute(
            select(
                donations.c.donor_name,
                donations.c.anonymous,
                donations.c.public_message,
                donations.c.succeeded_at,
            )
            .where(
                donations.c.campaign_id == campaign_id,
                donations.c.show_message.is_(True),
                donations.c.public_message.is_not(None),
                donations.c.status == DonationStatus.SUCCEEDED.value,
            )
            .order_by(donations.c.succeeded_at.desc())
            .limit(limit)
        ).all()
    )


def donation_row(conn: Connection, donation_id: str, lock: bool = False) -> Any | None:
    """The stored donation, if any; `lock` holds its row until the transaction ends."""
    query = select(donations).where(donations.c.id == donation_id)
    return conn.execute(query.with_for_update() if lock else query).first()


def donation_by_payment(
    conn: Connection, payment_intent_id: str | None, charge_id: str | None
) -> Any | None:
    """The donation paid by this payment intent or charge, if any is known yet."""
    for column, value in (
        (donations.c.payment_intent_id, payment_intent_id),
        (donations.c.charge_id, charge_id),
    ):
        if value:
            row = conn.execute(select(donations).where(column == value)).first()
            if row is not None:
                return row
    return None


def mark_succeeded(
    conn: Connection,
    donation_id: str,
    payment_intent_id: str | None,
    when: datetime,
    payment: dict[str, Any] | None = None,
) -> bool:
    """Move a donation to succeeded from a state Stripe's "paid" may follow; False if it
    already succeeded (so nothing downstream can be told twice)."""
    result = conn.execute(
        update(donations)
        .where(
            donations.c.id == donation_id,
            donations.c.status.in_([status.value for status in SUCCEEDS_FROM]),
        )
        .values(
            status=DonationStatus.SUCCEEDED.value,
            succeeded_at=when,
            payment_intent_id=payment_intent_id,
            **(payment or {}),
        )
    )
    return result.rowcount == 1


def end_unpaid(conn: Connection, donation_id: str, status: DonationStatus, when: datetime) -> bool:
    """Move a pending donation to failed, expired or canceled; False if it was not pending."""
    result = conn.execute(
        update(donations)
        .where(
            donations.c.id == donation_id,
            donations.c.status.in_([status.value for status in ENDS_UNPAID_FROM]),
        )
        .values(status=status.value, ended_at=when)
    )
    return result.rowcount == 1


def set_donation(conn: Connection, donation_id: str, **values: Any) -> None:
    """Update a donation's columns."""
    conn.execute(update(donations).where(donations.c.id == donation_id).values(**values))


def waiting_events(conn: Connection, keys: list[str]) -> list[Any]:
    """Stripe events kept because they came before what they follow, oldest first."""
    wanted = [key for key in keys if key]
    if not wanted:
        return []
    return list(
        conn.execute(
            select(stripe_events)
            .where(
                stripe_events.c.outcome.in_(("waiting", "unmatched")),
                stripe_events.c.waiting_for.in_(wanted),
            )
            .order_by(stripe_events.c.received_at)
        ).all()
    )


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
    waiting_for: str | None = None,
) -> None:
    """Say what became of a Stripe event (and keep its payload if it must wait)."""
    conn.execute(
        update(stripe_events)
        .where(stripe_events.c.id == event_id)
        .values(outcome=outcome, donation_id=donation_id, payload=payload, waiting_for=waiting_for)
    )


def keep_unreadable(conn: Connection, event_id: str, payload: str, problem: str) -> None:
    """Keep a signed event that cannot be applied, with what is wrong, for a person."""
    conn.execute(
        update(stripe_events)
        .where(stripe_events.c.id == event_id)
        .values(
            outcome="unreadable",
            donation_id=None,
            payload=payload,
            waiting_for=None,
            problem=problem[:2000],
        )
    )


def kept_event_ids(conn: Connection, outcomes: tuple[str, ...], limit: int) -> list[str]:
    """The Stripe events kept to be applied later, oldest first."""
    return list(
        conn.execute(
            select(stripe_events.c.id)
            .where(stripe_events.c.outcome.in_(outcomes))
            .order_by(stripe_events.c.received_at)
            .limit(limit)
        ).scalars()
    )


def lock_kept_event(conn: Connection, event_id: str, outcomes: tuple[str, ...]) -> Any | None:
    """A kept event, locked, unless another worker holds it or it was applied meanwhile."""
    return conn.execute(
        select(stripe_events)
        .where(stripe_events.c.id == event_id, stripe_events.c.outcome.in_(outcomes))
        .with_for_update(skip_locked=True)
    ).first()


def refund_row(conn: Connection, refund_id: str) -> Any | None:
    """The refund remembered under a Stripe refund id, if any."""
    return conn.execute(select(refunds).where(refunds.c.id == refund_id)).first()


def mark_refund_failed(conn: Connection, refund_id: str, when: datetime) -> bool:
    """A counted refund no longer counts; False if it was marked failed already."""
    marked = conn.execute(
        update(refunds)
        .where(refunds.c.id == refund_id, refunds.c.status == REFUND_COUNTED)
        .values(status=REFUND_FAILED, failed_at=when)
    )
    return marked.rowcount == 1


def dispute_row(conn: Connection, dispute_id: str) -> Any | None:
    """The dispute remembered under a Stripe dispute id, if any."""
    return conn.execute(select(disputes).where(disputes.c.id == dispute_id)).first()


def close_dispute(conn: Connection, dispute_id: str, status: str, when: datetime) -> bool:
    """An open dispute ends (won or lost); False if it had ended already."""
    closed = conn.execute(
        update(disputes)
        .where(disputes.c.id == dispute_id, disputes.c.status == "open")
        .values(status=status, closed_at=when)
    )
    return closed.rowcount == 1
