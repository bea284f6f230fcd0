"""One function per event the ledger consumes: load what it needs, apply the domain's rules,
save, and queue the ledger's own events in the outbox, all in the caller's transaction.

Each handler has the signature the idempotent consumer expects, (conn, event, data): the
consumer has already recorded the event id in the same transaction, so a handler runs at most
once per event id. A handler raises PoisonEvent for an event that can never be applied.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import Connection

from services.shared.consumer import PoisonEvent
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import LEDGER_TOPIC, MEALS_FUNDED
from services.shared.money import Money
from services.shared.outbox import add_to_outbox

from . import store
from .domain import MealTally, donation_entry

log = logging.getLogger(__name__)

SOURCE = "difts/ledger"


def campaign_published(conn: Connection, event: CloudEvent, data: dict[str, Any]) -> None:
    """Keep the ledger's projection of a campaign up to date (its currency and meal price
    decide how money becomes meals); a new meal price recounts the campaign's meals."""
    campaign_id = data["campaign_id"]
    _refuse_taken_slug(conn, campaign_id, data["slug"])
    existing = store.campaign_by_id(conn, campaign_id)
    if existing is not None and existing.currency != data["currency"]:
        totals = store.lock_totals(conn, campaign_id)
        if totals.donations:
            raise PoisonEvent(
                f"campaign {campaign_id} holds {existing.currency} gifts; "
                f"it cannot change currency to {data['currency']}"
            )
        store.save_totals(conn, campaign_id, currency=data["currency"])
    store.upsert_campaign(
        conn,
        {
            "campaign_id": campaign_id,
            "slug": data["slug"],
            "title": data["title"],
            "currency": data["currency"],
            "meal_price": data["meal_price"],
            "goal_meals": data["goal_meals"],
        },
        replace=True,
    )
    if existing is not None and existing.meal_price != data["meal_price"]:
        _recount_meals(conn, event, campaign_id)


def donation_succeeded(conn: Connection, event: CloudEvent, data: dict[str, Any]) -> None:
    """Book a confirmed gift once: a balanced journal entry (debit Stripe clearing, credit
    the campaign's fund, the gross amount), the campaign's new totals, and a meals-funded
    event when the gift moves the campaign's meal counter."""
    campaign_id = data["campaign_id"]
    donation_id = data["donation_id"]
    gift = Money(data["amount"], data["currency"])
    campaign = store.campaign_by_id(conn, campaign_id)
    if campaign is None:
        # Campaign and donation events travel on different topics, so a gift may arrive
        # before its campaign: the event carries enough of the campaign to book it.
        _refuse_taken_slug(conn, campaign_id, data["campaign_slug"])
        store.upsert_campaign(
            conn,
            {
                "campaign_id": campaign_id,
                "slug": data["campaign_slug"],
                "title": data["campaign_title"],
                "currency": gift.currency,
                "meal_price": data["meal_price"],
                "goal_meals": None,
            },
            replace=False,
        )
        campaign = store.campaign_by_id(conn, campaign_id)
        assert campaign is not None
    if gift.currency != campaign.currency:
        raise PoisonEvent(
            f"donation {donation_id} is in {gift.currency}, campaign {campaign_id} in "
            f"{campaign.currency}"
        )
    totals = store.lock_totals(conn, campaign_id)
    if store.gift_already_booked(conn, donation_id):
        # The same payment confirmed under another event id: it is counted already.
        log.warning("gift %s already booked; not counted again", donation_id)
        return

    price = Money(campaign.meal_price, campaign.currency)
    before = MealTally(Money(totals.donated - totals.refunded, campaign.currency), price)
    after, gift_meals = before.add_gift(gift)
    entry = donation_entry(
        campaign_id,
        gift,
        data["succeeded_at"],
        description=f"Gift {donation_id} to {campaign.slug}",
    )
    store.post_entry(
        conn,
        entry,
        event_id=event.id,
        campaign_id=campaign_id,
        donation_id=donation_id,
        stripe_reference=data["payment_intent_id"] or data["checkout_session_id"],
    )
    store.save_totals(
        conn,
        campaign_id,
        donated=totals.donated + gift.amount,
        donations=totals.donations + 1,
        meals_funded=after.meals_funded,
        remainder=after.remainder.amount,
    )
    log.info(
        "booked gift",
        extra={
            "campaign_id": campaign_id,
            "donation_id": donation_id,
            "amount": gift.amount,
            "currency": gift.currency,
            "meals_funded": after.meals_funded,
        },
    )
    if after.meals_funded != totals.meals_funded:
        _announce_meals(
            conn,
            event,
            campaign,
            after,
            previous=totals.meals_funded,
            donation_id=donation_id,
            donation_meals=gift_meals,
        )


def _refuse_taken_slug(conn: Connection, campaign_id: str, slug: str) -> None:
    """Two campaigns cannot share a slug; an event claiming one can never be applied (and a
    unique violation would otherwise be retried forever)."""
    holder = store.campaign_id_with_slug(conn, slug)
    if holder is not None and holder != campaign_id:
        raise PoisonEvent(f"slug {slug!r} belongs to campaign {holder}, not {campaign_id}")


def _recount_meals(conn: Connection, event: CloudEvent, campaign_id: str) -> None:
    """Recount a campaign's meals at its current meal price, announcing any change."""
    campaign = store.campaign_by_id(conn, campaign_id)
    assert campaign is not None
    totals = store.lock_totals(conn, campaign_id)
    tally = MealTally(
        Money(totals.donated - totals.refunded, campaign.currency),
        Money(campaign.meal_price, campaign.currency),
    )
    store.save_totals(
        conn, campaign_id, meals_funded=tally.meals_funded, remainder=tally.remainder.amount
    )
    if tally.meals_funded != totals.meals_funded:
        _announce_meals(conn, event, campaign, tally, previous=totals.meals_funded)


def _announce_meals(
    conn: Connection,
    cause: CloudEvent,
    campaign: Any,
    tally: MealTally,
    *,
    previous: int,
    donation_id: str | None = None,
    donation_meals: int = 0,
) -> None:
    """Queue difts.ledger.meals_funded.v1 in the outbox, keyed by campaign so a campaign's
    counts reach consumers in order. Its id derives from the causing event's, so a replay of
    the same history announces under the same ids."""
    announcement = new_event(
        MEALS_FUNDED,
        SOURCE,
        {
            "campaign_id": campaign.campaign_id,
            "campaign_slug": campaign.slug,
            "currency": campaign.currency,
            "meal_price": tally.meal_price.amount,
            "meals_funded": tally.meals_funded,
            "previous_meals_funded": previous,
            "remainder": tally.remainder.amount,
            "donation_id": donation_id,
            "donation_meals": donation_meals,
        },
        subject=f"campaigns/{campaign.campaign_id}",
        correlation_id=cause.correlationid,
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SOURCE}/{MEALS_FUNDED}/{cause.id}")),
    )
    add_to_outbox(conn, store.outbox, LEDGER_TOPIC, campaign.campaign_id, announcement)
