"""One function per thing that happens to donations: load, apply the rules, save, and write
the resulting events to the outbox in the same transaction."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from services.shared.envelope import new_event
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    CAMPAIGNS_TOPIC,
    DONATION_SUCCEEDED,
    DONATIONS_TOPIC,
)
from services.shared.money import Money
from services.shared.outbox import add_to_outbox

from . import store
from .domain import (
    Campaign,
    CampaignStatus,
    DonationStatus,
    GiftLimits,
    GiftRefused,
    meals_in,
    price_gift,
    succeeded_event_id,
)
from .payments import StripeCheckout

log = logging.getLogger(__name__)

SOURCE = "difts/donations"
PAID_CHECKOUT_EVENTS = {"checkout.session.completed", "checkout.session.async_payment_succeeded"}


class UnknownCampaign(LookupError):
    """No campaign has this slug."""


@dataclass(frozen=True)
class Gift:
    """A donor's request to give, as validated at the edge."""

    campaign_slug: str
    amount: int | None
    meals: int | None
    currency: str | None
    donor_email: str
    donor_name: str
    locale: str
    updates_opt_in: bool
    correlation_id: str | None


def start_donation(
    engine: Engine, checkout: StripeCheckout, limits: GiftLimits, gift: Gift, public_url: str
) -> dict[str, Any]:
    """Price the gift, open a Stripe Checkout Session, and store the pending donation.

    Stripe is called before anything is stored, so a refused gift or an unreachable Stripe
    leaves no trace; the session's idempotency key comes from the donation id.
    """
    with engine.connect() as conn:
        campaign = store.campaign_by_slug(conn, gift.campaign_slug)
    if campaign is None:
        raise UnknownCampaign(gift.campaign_slug)
    amount = price_gift(
        campaign, limits, amount=gift.amount, meals=gift.meals, currency=gift.currency
    )
    donation_id = str(uuid.uuid4())
    session = checkout.create_session(
        donation_id=donation_id,
        campaign_id=campaign.id,
        campaign_title=campaign.title,
        gift=amount,
        donor_email=gift.donor_email,
        success_url=f"{public_url}/donations/{donation_id}/thanks",
        cancel_url=f"{public_url}/campaigns/{campaign.slug}?canceled={donation_id}",
    )
    now = datetime.now(UTC)
    row = {
        "id": donation_id,
        "campaign_id": campaign.id,
        "amount": amount.amount,
        "currency": amount.currency,
        "meals": gift.meals if gift.meals is not None else meals_in(amount, campaign.meal_price),
        "donor_email": gift.donor_email,
        "donor_name": gift.donor_name,
        "locale": gift.locale,
        "updates_opt_in": gift.updates_opt_in,
        "consent_at": now if gift.updates_opt_in else None,
        "status": DonationStatus.PENDING.value,
        "checkout_session_id": session.id,
        "checkout_url": session.url,
        "correlation_id": gift.correlation_id,
        "created_at": now,
    }
    with engine.begin() as conn:
        conn.execute(store.donations.insert().values(**row))
    log.info("donation started", extra={"donation_id": donation_id, "campaign": campaign.slug})
    return {**row, "campaign": campaign.slug}


def apply_stripe_event(engine: Engine, event: dict[str, Any], correlation_id: str | None) -> str:
    """Apply one verified Stripe event at most once; return what became of it."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if not store.record_stripe_event(conn, event["id"], event["type"], now):
            return "duplicate"
        if event["type"] not in PAID_CHECKOUT_EVENTS:
            store.set_stripe_event_outcome(conn, event["id"], "ignored", None)
            return "ignored"
        session = (event.get("data") or {}).get("object") or {}
        donation_id = (session.get("metadata") or {}).get("donation_id") or session.get(
            "client_reference_id"
        )
        if (
            event["type"] == "checkout.session.completed"
            and session.get("payment_status") != "paid"
        ):
            # Delayed payment methods: async_payment_succeeded will follow.
            store.set_stripe_event_outcome(conn, event["id"], "awaiting_payment", donation_id)
            return "awaiting_payment"
        donation = store.donation_row(conn, donation_id) if donation_id else None
        if donation is None:
            # Kept, so it can be applied once the donation is known.
            store.set_stripe_event_outcome(
                conn, event["id"], "unmatched", donation_id, json.dumps(event)
            )
            log.warning("stripe event for an unknown donation kept for later")
            return "unmatched"
        if not _amount_matches(session, donation):
            store.set_stripe_event_outcome(
                conn, event["id"], "amount_mismatch", donation.id, json.dumps(event)
            )
            log.error("stripe reported another amount than the donation's; not counted")
            return "amount_mismatch"
        if not store.mark_succeeded(conn, donation.id, session.get("payment_intent"), now):
            store.set_stripe_event_outcome(
                conn, event["id"], f"already_{donation.status}", donation.id
            )
            return f"already_{donation.status}"
        campaign = store.campaign_by_id(conn, donation.campaign_id)
        assert campaign is not None  # donations reference campaigns by foreign key
        add_to_outbox(
            conn,
            store.outbox,
            DONATIONS_TOPIC,
            campaign.id,
            _succeeded_event(
                donation, campaign, session, now, donation.correlation_id or correlation_id
            ),
        )
        store.set_stripe_event_outcome(conn, event["id"], "succeeded", donation.id)
    log.info("donation succeeded", extra={"donation_id": donation.id})
    return "succeeded"


def _amount_matches(session: dict[str, Any], donation: Any) -> bool:
    total = session.get("amount_total")
    currency = str(session.get("currency") or "").upper()
    return total is None or (total == donation.amount and currency in ("", donation.currency))


def _succeeded_event(
    donation: Any,
    campaign: Campaign,
    session: dict[str, Any],
    now: datetime,
    correlation_id: str | None,
) -> Any:
    data = {
        "donation_id": donation.id,
        "campaign_id": campaign.id,
        "campaign_slug": campaign.slug,
        "campaign_title": campaign.title,
        "campaign_cause": campaign.cause,
        "amount": donation.amount,
        "currency": donation.currency,
        "meal_price": campaign.meal_price.amount,
        "donor": {
            "email": donation.donor_email,
            "name": donation.donor_name,
            "locale": donation.locale,
        },
        "updates_opt_in": donation.updates_opt_in,
        "checkout_session_id": session.get("id"),
        "payment_intent_id": session.get("payment_intent"),
        "succeeded_at": now.isoformat(),
    }
    return new_event(
        DONATION_SUCCEEDED,
        SOURCE,
        data,
        subject=f"donations/{donation.id}",
        correlation_id=correlation_id,
        event_id=succeeded_event_id(donation.id),
    )


def publish_campaign(
    engine: Engine,
    *,
    slug: str,
    title: str,
    cause: str,
    summary: str,
    meal_price: Money,
    goal_meals: int | None,
) -> tuple[str, bool]:
    """Create a live campaign (if no campaign has this slug) and announce it; return its id
    and whether it was created now."""
    with engine.begin() as conn:
        existing = store.campaign_by_slug(conn, slug)
        if existing is not None:
            return existing.id, False
        campaign_id = str(uuid.uuid4())
        conn.execute(
            store.campaigns.insert().values(
                id=campaign_id,
                slug=slug,
                title=title,
                cause=cause,
                summary=summary,
                currency=meal_price.currency,
                meal_price=meal_price.amount,
                goal_meals=goal_meals,
                status=CampaignStatus.LIVE.value,
                created_at=datetime.now(UTC),
            )
        )
        add_to_outbox(
            conn,
            store.outbox,
            CAMPAIGNS_TOPIC,
            campaign_id,
            new_event(
                CAMPAIGN_PUBLISHED,
                SOURCE,
                {
                    "campaign_id": campaign_id,
                    "slug": slug,
                    "title": title,
                    "cause": cause,
                    "currency": meal_price.currency,
                    "meal_price": meal_price.amount,
                    "goal_meals": goal_meals,
                },
                subject=f"campaigns/{campaign_id}",
            ),
        )
    return campaign_id, True


__all__ = [
    "Gift",
    "GiftRefused",
    "UnknownCampaign",
    "apply_stripe_event",
    "publish_campaign",
    "start_donation",
]
