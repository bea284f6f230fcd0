"""What the ledger's handlers share: the unit of work they use and what they read of Stripe
(the ports), the campaign projection any of their events may have to fill in, and the recount
of a campaign's meals with the events that announce it (difts.ledger.meals_funded.v1,
difts.ledger.milestone_reached.v1)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from services.shared.consumer import PoisonEvent
from services.shared.db import as_utc
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import LEDGER_TOPIC, MEALS_FUNDED, MILESTONE_REACHED
from services.shared.unit_of_work import Outbox

from .. import store
from ..domain import (
    EPOCH,
    BalanceQuery,
    Campaign,
    MealCount,
    PricePeriod,
    StripeCharge,
    StripeMovement,
    StripePayout,
    StripeRefund,
    count_meals,
    highest,
    milestones_crossed,
)

SOURCE = "difts/ledger"


class UnitOfWork(Protocol):
    """What the handlers use of a unit of work (unit_of_work.LedgerUnitOfWork; the unit
    tests' fake): its repositories and its outbox, which they only read off it."""

    @property
    def campaigns(self) -> store.Campaigns:
        """Campaigns, their totals, price periods and milestones."""

    @property
    def gifts(self) -> store.Gifts:
        """The booked gifts."""

    @property
    def journal(self) -> store.Journal:
        """Entries and lines, closed periods, payout items."""

    @property
    def programmes(self) -> store.Programmes:
        """The programmes of difts: their funds, bookings and dift allocations."""

    @property
    def outbox(self) -> Outbox:
        """Where the ledger's events go, in the same transaction."""


OpenUnitOfWork = Callable[[], AbstractContextManager[UnitOfWork]]
"""Opens a unit of work: for the work that reads Stripe, which no transaction should wait on."""

Progress = Callable[[int], None]
"""Hears how many of Stripe's balance transactions were read so far."""


class StripeRecords(Protocol):
    """What the ledger reads of Stripe (stripe_balance.BalanceTransactions); each call raises
    StripeUnavailable when Stripe cannot be asked."""

    def movements(
        self, which: BalanceQuery, progress: Progress | None = None
    ) -> Iterator[StripeMovement]:
        """Every balance transaction of a period or a payout."""

    def movement(self, balance_transaction_id: str) -> StripeMovement:
        """One balance transaction."""

    def charge(self, charge_id: str) -> StripeCharge:
        """One charge."""

    def refund(self, refund_id: str) -> StripeRefund:
        """One refund."""

    def payout(self, payout_id: str) -> StripePayout:
        """One payout."""


@contextmanager
def never_applicable(about: str = "") -> Iterator[None]:
    """What the domain refuses (ValueError) makes an event that can never be applied."""
    try:
        yield
    except ValueError as error:
        raise PoisonEvent(f"{about}{error}") from error


def derived_id(*parts: str) -> str:
    """An id for an event the ledger publishes, derived from what causes it, so a replay
    announces under the same id (and consumers deduplicate it)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join((SOURCE, *parts))))


def project_campaign(uow: UnitOfWork, carried: Campaign, *, authority: bool = False) -> Campaign:
    """The ledger's projection of a campaign, written from what an event carries of it.

    Campaign and donation events travel on different topics, so a gift or a price change may
    arrive before its campaign: what it carries fills in a campaign the ledger has not heard
    of, and a campaign already known is kept. The published campaign is the authority
    (`authority`): it overwrites. Two campaigns cannot share a slug; an event claiming one can
    never be applied (a unique violation would otherwise be retried forever)."""
    known = uow.campaigns.get(carried.campaign_id)
    if known is not None and not authority:
        return known
    holder = uow.campaigns.holder_of(carried.slug)
    if holder is not None and holder != carried.campaign_id:
        raise PoisonEvent(
            f"slug {carried.slug!r} belongs to campaign {holder}, not {carried.campaign_id}"
        )
    if authority:
        uow.campaigns.save(carried)
    else:
        uow.campaigns.add(carried)
    found = uow.campaigns.get(carried.campaign_id)
    assert found is not None
    return found


def price_periods(uow: UnitOfWork, campaign_id: str, meal_price: int) -> list[PricePeriod]:
    """A campaign's price periods, starting the first one at `meal_price` if it has none."""
    periods = uow.campaigns.periods(campaign_id)
    if not periods:
        uow.campaigns.start_period(campaign_id, EPOCH, meal_price)
        periods = uow.campaigns.periods(campaign_id)
    return periods


def recount(uow: UnitOfWork, cause: CloudEvent, campaign_id: str) -> None:
    """Recount a campaign's meals over its price periods, announcing any change."""
    campaign = uow.campaigns.get(campaign_id)
    assert campaign is not None
    totals = uow.campaigns.lock_totals(campaign_id)
    assert totals is not None
    count = count_meals(price_periods(uow, campaign_id, campaign.meal_price))
    uow.campaigns.save_totals(campaign_id, totals.counted(count))
    if count.meals_funded != totals.meals_funded:
        announce_meals(uow, cause, campaign, count, previous=totals.meals_funded)


def announce_meals(
    uow: UnitOfWork,
    cause: CloudEvent,
    campaign: Campaign,
    count: MealCount,
    *,
    previous: int,
    donation_id: str | None = None,
    donation_meals: int = 0,
    dift_id: str | None = None,
) -> None:
    """Queue difts.ledger.meals_funded.v1, keyed by campaign so a campaign's counts reach
    consumers in order, and one milestone event naming the milestones crossed for the first
    time. The meals event's id derives from the causing event's (a dift's: from the dift and
    the campaign, one dift moving several campaigns' counts); each milestone goes out once
    even if the count falls back and rises again."""
    campaign_id = campaign.campaign_id
    announced_by = (
        derived_id(MEALS_FUNDED, "dift", dift_id, campaign_id)
        if dift_id is not None
        else derived_id(MEALS_FUNDED, cause.id)
    )
    announcement = new_event(
        MEALS_FUNDED,
        SOURCE,
        {
            "campaign_id": campaign_id,
            "campaign_slug": campaign.slug,
            "currency": campaign.currency,
            "meal_price": count.meal_price.amount,
            "meals_funded": count.meals_funded,
            "previous_meals_funded": previous,
            "remainder": count.remainder.amount,
            "donation_id": donation_id,
            "donation_meals": donation_meals,
            # Only a dift's announcement names one (a gift's reads as it always did).
            **({"dift_id": dift_id} if dift_id is not None else {}),
        },
        subject=f"campaigns/{campaign_id}",
        correlation_id=cause.correlationid,
        event_id=announced_by,
    )
    uow.outbox.add(LEDGER_TOPIC, campaign_id, announcement)
    crossed = milestones_crossed(previous, count.meals_funded, campaign.goal_meals)
    first_time = uow.campaigns.claim_milestones(
        campaign_id, [m.name for m in crossed], as_utc(cause.time)
    )
    fresh = [milestone for milestone in crossed if milestone.name in first_time]
    if not fresh:
        return
    # The milestones one booking crosses together are one moment: one event names them all,
    # headed by the highest (its id derives from the campaign and that milestone, each of
    # which is reached once, so a replay announces under the same id).
    top = highest(fresh)
    reached = new_event(
        MILESTONE_REACHED,
        SOURCE,
        {
            "campaign_id": campaign_id,
            "campaign_slug": campaign.slug,
            **top.as_data(),
            "milestones": [milestone.as_data() for milestone in fresh],
            "meals_funded": count.meals_funded,
            "goal_meals": campaign.goal_meals,
            "reached_at": cause.time.isoformat(),
        },
        subject=f"campaigns/{campaign_id}",
        correlation_id=cause.correlationid,
        event_id=derived_id("milestone", campaign_id, top.name),
    )
    uow.outbox.add(LEDGER_TOPIC, campaign_id, reached)
