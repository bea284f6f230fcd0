"""The campaign events the ledger consumes: a campaign's projection, and its meal prices from
their dates on (the meals are recounted whenever a price changes what they are)."""

from __future__ import annotations

from dataclasses import replace

from services.shared.consumer import PoisonEvent
from services.shared.db import as_utc
from services.shared.envelope import CloudEvent

from ..domain import EPOCH, Campaign, period_for
from .books import UnitOfWork, price_periods, project_campaign, recount


def campaign_published(event: CloudEvent, uow: UnitOfWork) -> None:
    """Keep the ledger's projection of a campaign up to date (its currency and meal price
    decide how money becomes meals). The meal price here is the one in force now: a different
    one corrects the price of the period in force at the event's time and recounts. A
    campaign that holds gifts cannot change currency."""
    data = event.data
    campaign_id = data["campaign_id"]
    known = uow.campaigns.get(campaign_id)
    campaign = project_campaign(
        uow,
        Campaign(
            campaign_id,
            data["slug"],
            data["title"],
            data["currency"],
            data["meal_price"],
            data["goal_meals"],
        ),
        authority=True,
    )
    if known is not None and known.currency != campaign.currency:
        totals = uow.campaigns.lock_totals(campaign_id)
        assert totals is not None
        if totals.donations:
            # Raised after the projection is written: the consumer's savepoint undoes it.
            raise PoisonEvent(
                f"campaign {campaign_id} holds {known.currency} gifts; "
                f"it cannot change currency to {campaign.currency}"
            )
        uow.campaigns.save_totals(campaign_id, replace(totals, currency=campaign.currency))
    periods = uow.campaigns.periods(campaign_id)
    if not periods:
        uow.campaigns.start_period(campaign_id, EPOCH, campaign.meal_price)
        return
    in_force = period_for(periods, as_utc(event.time))
    if in_force.meal_price.amount != campaign.meal_price:
        uow.campaigns.start_period(campaign_id, in_force.starts_at, campaign.meal_price)
    recount(uow, event, campaign_id)


def meal_price_changed(event: CloudEvent, uow: UnitOfWork) -> None:
    """A new meal price from a date on: gifts dated before it keep the old price, gifts from
    it on (even ones booked already, if the change arrives late) count at the new one; the
    remainder carried into the new period is valued at the new price."""
    data = event.data
    campaign_id = data["campaign_id"]
    effective_from = as_utc(data["effective_from"])
    # The change may arrive before the campaign's projection: it carries enough of it.
    campaign = project_campaign(
        uow,
        Campaign(
            campaign_id,
            data["slug"],
            data["slug"],
            data["currency"],
            data["previous_meal_price"],
        ),
    )
    if campaign.currency != data["currency"]:
        raise PoisonEvent(f"campaign {campaign_id} counts meals in {campaign.currency}")
    uow.campaigns.lock_totals(campaign_id)
    periods = price_periods(uow, campaign_id, data["previous_meal_price"])
    containing = period_for(periods, effective_from)
    uow.campaigns.start_period(campaign_id, effective_from, data["meal_price"])
    if containing.starts_at < effective_from:
        # Gifts and difts' allocations dated from the change on count at the new price.
        for moved in (
            uow.gifts.move_to_period(campaign_id, effective_from, containing.starts_at),
            uow.programmes.move_to_period(campaign_id, effective_from, containing.starts_at),
        ):
            if moved is not None:
                uow.campaigns.add_eligible(campaign_id, containing.starts_at, -moved)
                uow.campaigns.add_eligible(campaign_id, effective_from, moved)
    now_price = period_for(uow.campaigns.periods(campaign_id), as_utc(event.time))
    uow.campaigns.set_meal_price(campaign_id, now_price.meal_price.amount)
    recount(uow, event, campaign_id)
