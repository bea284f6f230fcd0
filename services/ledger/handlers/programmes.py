"""A company's programme of difts, as the donations service announces it: its funding (by
Stripe or bank transfer), each dift directed by its recipient or given by the fallback rule
at expiry, and the credit back of what is left to the sponsor. Each is booked once per
funding, dift or credit id, whatever event ids announce it again; the programme's fund never
goes below zero (a booking that would take it there is refused: dead letter, nothing booked).

A dift moves money from the programme's fund to each chosen campaign's fund and counts meals
there at that moment with the gifts' rules (price periods, remainder carried), announcing the
new counts and milestones as gifts do, and what the dift did (difts.ledger.dift_booked.v1)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from services.shared.consumer import PoisonEvent
from services.shared.db import as_utc
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import DIFT_BOOKED, LEDGER_TOPIC
from services.shared.money import Money

from ..domain import (
    Campaign,
    DiftAllocation,
    DiftOutcome,
    EntryKind,
    EntryReferences,
    Movement,
    ProgrammeFund,
    ProgrammeMovement,
    count_meals,
    credit_back_entry,
    dift_entry,
    dift_shares,
    funding_entry,
    period_for,
    programme_fund,
    stripe_fee,
    with_eligible,
)
from .books import (
    SOURCE,
    UnitOfWork,
    announce_meals,
    derived_id,
    never_applicable,
    price_periods,
    project_campaign,
)

log = logging.getLogger(__name__)


def programme_funded(event: CloudEvent, uow: UnitOfWork) -> None:
    """Book a programme's funding once per funding id: by Stripe, clearing holds the net,
    Stripe's fee is the platform's processing-fee expense (as a gift's under the default fee
    policy) and the programme's fund the gross; by bank transfer, the bank and the fund hold
    the amount. The entry names the charge and balance transaction for reconciliation."""
    data = event.data
    programme_id = data["programme_id"]
    amount = Money(data["amount"], data["currency"])
    by_bank_transfer = data["method"] == "bank_transfer"
    with never_applicable(f"programme {programme_id}: "):
        programme_fund(programme_id)
        fee = None if by_bank_transfer else stripe_fee(amount, data["fee"], data["net"])
    fund = uow.programmes.lock(programme_id)
    if fund is None:
        uow.programmes.add(ProgrammeFund(programme_id, data["sponsor_id"], amount.currency))
        fund = uow.programmes.lock(programme_id)
        assert fund is not None
    if uow.programmes.booked(Movement.FUNDING, data["funding_id"]):
        log.warning("funding %s already booked; not counted again", data["funding_id"])
        return
    _of_sponsor(fund, data["sponsor_id"])
    charge_id = None if by_bank_transfer else data["charge_id"]
    if charge_id and uow.journal.entry_of(
        [EntryKind.PROGRAMME_FUNDED, EntryKind.DONATION], charge_id
    ):
        raise PoisonEvent(f"charge {charge_id} is booked already for another payment")
    with never_applicable():
        after = fund.with_funding(amount, fee)
    effective_at = as_utc(data["funded_at"])
    how = "by bank transfer" if by_bank_transfer else "through Stripe"
    reference = f" ({data['bank_reference']})" if data.get("bank_reference") else ""
    entry = funding_entry(
        programme_id,
        amount,
        fee,
        by_bank_transfer,
        effective_at,
        f"Programme {programme_id} of {data['sponsor_name']} funded {how}{reference}",
    )
    about = EntryReferences(
        event.id,
        None,
        stripe_reference=None
        if by_bank_transfer
        else (data["payment_intent_id"] or data["checkout_session_id"]),
        stripe_object_id=charge_id,
        charge_id=charge_id,
        balance_transaction_id=None if by_bank_transfer else data["balance_transaction_id"],
    )
    uow.journal.post(entry, about)
    uow.programmes.record(
        ProgrammeMovement(
            Movement.FUNDING, data["funding_id"], programme_id, "funded", amount, effective_at
        )
    )
    uow.programmes.save(after)
    log.info(
        "booked programme funding",
        extra={"programme_id": programme_id, "amount": amount.amount, "method": data["method"]},
    )


def dift_directed(event: CloudEvent, uow: UnitOfWork) -> None:
    """Book a directed dift once: from the programme's fund to each chosen campaign's."""
    _book_dift(event, uow, DiftOutcome.DIRECTED, as_utc(event.data["directed_at"]))


def dift_expired(event: CloudEvent, uow: UnitOfWork) -> None:
    """Book an expired dift once, as its programme's fallback rule gave it: to campaigns like a
    directed one; under "credit back" nothing moves (the value stays in the fund until the
    credit back), the dift is only counted as expired."""
    _book_dift(event, uow, DiftOutcome.EXPIRED, as_utc(event.data["expired_at"]))


def programme_credited_back(event: CloudEvent, uow: UnitOfWork) -> None:
    """Book a credit back once per credit id: out of the programme's fund, owed to the sponsor
    (liabilities:sponsor-credits) until paid; never below zero."""
    data = event.data
    programme_id = data["programme_id"]
    fund = _funded(uow, programme_id)
    if uow.programmes.booked(Movement.CREDIT, data["credit_id"]):
        log.warning("credit back %s already booked", data["credit_id"])
        return
    _of_sponsor(fund, data["sponsor_id"])
    amount = Money(data["amount"], data["currency"])
    with never_applicable():
        after = fund.with_credit_back(amount)
    effective_at = as_utc(data["credited_at"])
    entry = credit_back_entry(
        programme_id,
        amount,
        effective_at,
        f"Programme {programme_id} credited back to sponsor {data['sponsor_id']} "
        f"({data['reason']}{': ' + data['reference'] if data.get('reference') else ''})",
    )
    uow.journal.post(entry, EntryReferences(event.id, None))
    uow.programmes.record(
        ProgrammeMovement(
            Movement.CREDIT, data["credit_id"], programme_id, "credited_back", amount, effective_at
        )
    )
    uow.programmes.save(after)


# --- what booking a dift takes ----------------------------------------------------------------


def _book_dift(event: CloudEvent, uow: UnitOfWork, outcome: DiftOutcome, when: datetime) -> None:
    """Move a dift's value from its programme's fund to its allocations' campaigns, once per
    dift id; refuse one whose allocations do not sum to its value, in another currency, to a
    campaign the ledger cannot count meals for, or beyond what the fund holds."""
    data = event.data
    dift_id, programme_id = data["dift_id"], data["programme_id"]
    fund = _funded(uow, programme_id)
    if uow.programmes.booked(Movement.DIFT, dift_id):
        log.warning("dift %s already booked; not counted again", dift_id)
        return
    _of_sponsor(fund, data["sponsor_id"])
    value = Money(data["value"], data["currency"])
    carried = {part["campaign_id"]: part for part in data["allocations"]}
    keeps_value = outcome is DiftOutcome.EXPIRED and data["rule"] == "credit_back"
    if keeps_value and carried:
        raise PoisonEvent(f"dift {dift_id} expired to be credited back gives no campaign money")
    parts = [
        (part["campaign_id"], Money(part["amount"], value.currency)) for part in data["allocations"]
    ]
    with never_applicable(f"dift {dift_id}: "):
        shares = [] if keeps_value else dift_shares(value, parts)
        after = fund.with_dift(outcome, Money.zero(value.currency) if keeps_value else value)
    # Every campaign first (its projection, its totals locked in one order), then the money.
    campaigns = {cid: _campaign_of(uow, carried[cid], value.currency) for cid, _ in shares}
    for campaign_id in sorted(campaigns):
        uow.campaigns.lock_totals(campaign_id)
    booked: list[dict[str, Any]] = []
    allocations: list[DiftAllocation] = []
    for campaign_id, amount in shares:
        campaign = campaigns[campaign_id]
        with never_applicable(f"dift {dift_id}: "):
            entry = dift_entry(
                programme_id,
                outcome,
                campaign_id,
                amount,
                when,
                f"Dift {dift_id} of programme {programme_id} {outcome.value} to {campaign.slug}",
            )
        uow.journal.post(entry, EntryReferences(event.id, campaign_id))
        allocation, part = _count_meals(event, uow, campaign, amount, when)
        booked.append(part)
        allocations.append(
            DiftAllocation(dift_id, campaign_id, programme_id, outcome, amount, *allocation)
        )
    uow.programmes.add_allocations(allocations)
    uow.programmes.record(
        ProgrammeMovement(Movement.DIFT, dift_id, programme_id, outcome.value, value, when)
    )
    uow.programmes.save(after)
    log.info(
        "booked dift",
        extra={"programme_id": programme_id, "dift_id": dift_id, "outcome": outcome.value},
    )
    announced = new_event(
        DIFT_BOOKED,
        SOURCE,
        {
            "dift_id": dift_id,
            "programme_id": programme_id,
            "kind": outcome.value,
            "value": value.amount,
            "currency": value.currency,
            "allocations": booked,
            "programme_balance": after.balance.amount,
            "booked_at": when.isoformat(),
        },
        subject=f"programmes/{programme_id}/difts/{dift_id}",
        correlation_id=event.correlationid,
        event_id=derived_id(DIFT_BOOKED, dift_id),
    )
    uow.outbox.add(LEDGER_TOPIC, programme_id, announced)


def _count_meals(
    event: CloudEvent, uow: UnitOfWork, campaign: Campaign, amount: Money, when: datetime
) -> tuple[tuple[int, datetime, datetime], dict[str, Any]]:
    """Count one allocation's meals at the campaign as a gift's are (in the price period in
    force at `when`, with the remainder carried), save the campaign's totals and announce a
    changed count (and milestones). Returns the allocation's (meals, effective_at,
    period_starts_at) and what difts.ledger.dift_booked.v1 says of it."""
    campaign_id = campaign.campaign_id
    totals = uow.campaigns.lock_totals(campaign_id)
    assert totals is not None
    periods = price_periods(uow, campaign_id, campaign.meal_price)
    before = count_meals(periods)
    period = period_for(periods, when)
    uow.campaigns.add_eligible(campaign_id, period.starts_at, amount)
    after = count_meals(with_eligible(periods, period.starts_at, amount))
    meals = after.meals_funded - before.meals_funded
    uow.campaigns.save_totals(campaign_id, totals.with_dift(amount, after, meals))
    dift_id = event.data["dift_id"]
    if after.meals_funded != totals.meals_funded:
        announce_meals(
            uow,
            event,
            campaign,
            after,
            previous=totals.meals_funded,
            donation_meals=meals,
            dift_id=dift_id,
        )
    told = {
        "campaign_id": campaign_id,
        "campaign_slug": campaign.slug,
        "amount": amount.amount,
        "meal_price": period.meal_price.amount,
        "meals": meals,
        "meals_funded": after.meals_funded,
        "remainder": after.remainder.amount,
    }
    return (meals, when, period.starts_at), told


def _campaign_of(uow: UnitOfWork, carried: dict[str, Any], currency: str) -> Campaign:
    """The campaign an allocation goes to: the ledger's projection, or, for a campaign whose
    own events it has not read yet, one filled in from what the allocation carries (its meal
    price from the shortlist). A campaign it cannot count meals for, or counting them in
    another currency, can never be applied."""
    campaign_id = carried["campaign_id"]
    known = uow.campaigns.get(campaign_id)
    if known is None:
        if carried.get("meal_price") is None:
            raise PoisonEvent(
                f"campaign {campaign_id} is unknown to the ledger and the allocation carries "
                "no meal price (replay this dead letter once its campaign is published)"
            )
        with never_applicable():
            known = project_campaign(
                uow,
                Campaign(
                    campaign_id,
                    carried["campaign_slug"],
                    carried.get("campaign_title") or carried["campaign_slug"],
                    currency,
                    carried["meal_price"],
                ),
            )
    if known.currency != currency:
        raise PoisonEvent(
            f"campaign {campaign_id} counts meals in {known.currency}, the dift is in {currency}"
        )
    return known


def _funded(uow: UnitOfWork, programme_id: str) -> ProgrammeFund:
    """A programme's fund, locked; refused for a programme never funded (its events come in
    order on one partition, so its funding is always booked first)."""
    fund = uow.programmes.lock(programme_id)
    if fund is None:
        raise PoisonEvent(f"programme {programme_id} was never funded: its fund holds nothing")
    return fund


def _of_sponsor(fund: ProgrammeFund, sponsor_id: str) -> None:
    """Refuse an event naming another sponsor than the programme's."""
    if fund.sponsor_id != sponsor_id:
        raise PoisonEvent(
            f"programme {fund.programme_id} is sponsor {fund.sponsor_id}'s, not {sponsor_id}'s"
        )
