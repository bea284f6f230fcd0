"""Stripe's money movements, as the donations service announces them: a gift confirmed, money
of it going back (a refund, a refund that failed, a dispute) and payouts to the bank. Each is
booked once, whatever event ids announce it again: the journal's entries, the gift's state,
the campaign's totals and meals, and the ledger's own events in the outbox."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from services.shared.consumer import PoisonEvent
from services.shared.db import as_utc
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import DONATION_BOOKED, LEDGER_TOPIC
from services.shared.money import Money

from ..domain import (
    BookedGift,
    Campaign,
    EntryKind,
    EntryReferences,
    FeePolicy,
    GiftBooking,
    JournalEntry,
    ReturnToDonor,
    count_meals,
    dispute_lost_entry,
    dispute_opened_entry,
    dispute_won_entry,
    gift_entries,
    payout_entry,
    period_for,
    refund_entry,
    refund_taken,
    reversal_entry,
    stripe_fee,
    with_eligible,
)
from .books import (
    SOURCE,
    UnitOfWork,
    announce_meals,
    derived_id,
    price_periods,
    project_campaign,
    recount,
)
from .books import never_applicable as _never_applicable

log = logging.getLogger(__name__)

# The donations service's events: the gifts it announces carry their donor for the receipt.
DONATIONS_SOURCE = "difts/donations"


def donation_succeeded(event: CloudEvent, uow: UnitOfWork) -> None:
    """Book a confirmed gift once: the gift's entries (net to Stripe clearing, Stripe's fee,
    the donor's cover, the campaign's fund, and the fee charged to the fund under that
    policy), the campaign's new totals and meals, and the ledger's events: what the gift did
    (donation_booked), the new meal count and any milestone crossed."""
    data = event.data
    campaign_id = data["campaign_id"]
    donation_id = data["donation_id"]
    amount = Money(data["amount"], data["currency"])
    campaign = project_campaign(
        uow,
        Campaign(
            campaign_id,
            data["campaign_slug"],
            data["campaign_title"],
            amount.currency,
            data["meal_price"],
        ),
    )
    if amount.currency != campaign.currency:
        raise PoisonEvent(
            f"donation {donation_id} is in {amount.currency}, campaign {campaign_id} in "
            f"{campaign.currency}"
        )
    totals = uow.campaigns.lock_totals(campaign_id)
    assert totals is not None
    if uow.journal.has_gift(donation_id):
        # The same payment confirmed under another event id: it is counted already.
        log.warning("gift %s already booked; not counted again", donation_id)
        return
    charge_id = data["charge_id"]
    if charge_id and uow.journal.entry_of([EntryKind.DONATION], charge_id):
        raise PoisonEvent(f"charge {charge_id} is booked already for another donation")
    gift = _gift_booking(data, campaign.fee_policy)
    effective_at = as_utc(data["succeeded_at"])
    about = EntryReferences(
        event.id,
        campaign_id,
        stripe_reference=data["payment_intent_id"] or data["checkout_session_id"],
        stripe_object_id=charge_id,
        charge_id=charge_id,
    )
    # The gift itself is the donation entry: it names the donation and its balance transaction.
    as_gift = replace(
        about, donation_id=donation_id, balance_transaction_id=data["balance_transaction_id"]
    )
    description = f"Gift {donation_id} to {campaign.slug}"
    for entry in gift_entries(campaign_id, gift, effective_at, description):
        uow.journal.post(entry, as_gift if entry.kind is EntryKind.DONATION else about)
    periods = price_periods(uow, campaign_id, campaign.meal_price)
    before = count_meals(periods)
    period = period_for(periods, effective_at)
    share = Money(max(0, gift.fund_share.amount), amount.currency)
    uow.campaigns.add_eligible(campaign_id, period.starts_at, share)
    after = count_meals(with_eligible(periods, period.starts_at, share))
    gift_meals = after.meals_funded - before.meals_funded
    uow.gifts.add(
        BookedGift.booked(
            donation_id, campaign_id, gift, charge_id, effective_at, period.starts_at, gift_meals
        )
    )
    uow.campaigns.save_totals(campaign_id, totals.with_gift(amount, after))
    log.info(
        "booked gift",
        extra={
            "campaign_id": campaign_id,
            "donation_id": donation_id,
            "amount": amount.amount,
            "currency": amount.currency,
            "meals_funded": after.meals_funded,
        },
    )
    booked = new_event(
        DONATION_BOOKED,
        SOURCE,
        {
            "donation_id": donation_id,
            "campaign_id": campaign_id,
            "campaign_slug": campaign.slug,
            "amount": amount.amount,
            "currency": amount.currency,
            "meal_price": period.meal_price.amount,
            "meals": gift_meals,
            "meals_funded": after.meals_funded,
            "remainder": after.remainder.amount,
            "receipt": receipt_facts(event),
        },
        subject=f"donations/{donation_id}",
        correlation_id=event.correlationid,
        event_id=derived_id(DONATION_BOOKED, donation_id),
    )
    uow.outbox.add(LEDGER_TOPIC, campaign_id, booked)
    if after.meals_funded != totals.meals_funded:
        announce_meals(
            uow,
            event,
            campaign,
            after,
            previous=totals.meals_funded,
            donation_id=donation_id,
            donation_meals=gift_meals,
        )


def receipt_facts(event: CloudEvent) -> dict[str, Any] | None:
    """What the donor's receipt states besides the ledger's figures, passed on from the
    donations service's event; none for a gift re-synced from Stripe, whose donor the ledger
    cannot vouch for (no receipt goes to it)."""
    if event.source != DONATIONS_SOURCE:
        return None
    data = event.data
    return {
        "donor": dict(data["donor"]),
        "campaign_title": data["campaign_title"],
        "campaign_cause": data.get("campaign_cause", ""),
        "succeeded_at": as_utc(data["succeeded_at"]).isoformat(),
    }


def donation_refunded(event: CloudEvent, uow: UnitOfWork) -> None:
    """Book one refund (full or partial) once per refund id: the fund and the donor-covered
    fee income give the money back in the gift's proportion, Stripe clearing pays it less the
    fee Stripe returns; the campaign's meals are recounted."""
    data = event.data
    campaign_id = data["campaign_id"]
    totals = uow.campaigns.lock_totals(campaign_id)
    if uow.journal.entry_of([EntryKind.REFUND], data["refund_id"]):
        log.warning("refund %s already booked", data["refund_id"])
        return
    gift = _booked_gift(uow, data)
    assert totals is not None
    amount = Money(data["amount"], data["currency"])
    back = _give_back(gift, amount)
    fee_refunded = Money(data["fee_refunded"], amount.currency)
    fee_back = gift.fee_back_on_refund(fee_refunded)
    entry = refund_entry(
        campaign_id,
        back,
        fee_refunded,
        fee_back,
        as_utc(data["refunded_at"]),
        description=f"Refund {data['refund_id']} of gift {data['donation_id']}",
    )
    _post_for_gift(uow, entry, event, gift, stripe_object_id=data["refund_id"])
    _change_gift(uow, gift, gift.refunded(back, fee_back))
    uow.campaigns.save_totals(campaign_id, totals.with_refunded(amount))
    recount(uow, event, campaign_id)


def donation_refund_failed(event: CloudEvent, uow: UnitOfWork) -> None:
    """A booked refund failed at Stripe (the money came back to our balance, never reached the
    donor): post one entry that reverses the refund's entry line for line, give the gift and
    the campaign back what the refund took, and recount the meals. A refund the ledger never
    booked has nothing to reverse."""
    data = event.data
    campaign_id = data["campaign_id"]
    refund_id = data["refund_id"]
    totals = uow.campaigns.lock_totals(campaign_id)
    if uow.journal.entry_of([EntryKind.REFUND_FAILED], refund_id):
        log.warning("failure of refund %s already booked", refund_id)
        return
    booked = uow.journal.entry_of([EntryKind.REFUND], refund_id)
    if booked is None:
        log.warning("refund %s failed but was never booked: nothing to reverse", refund_id)
        return
    gift = _booked_gift(uow, data)
    assert totals is not None
    lines = uow.journal.lines_of(booked.id)
    taken = refund_taken(campaign_id, lines, data["currency"])
    if taken.total.amount != data["amount"]:
        log.warning(
            "refund %s failed for %s but was booked for %s; the booking is reversed",
            refund_id,
            data["amount"],
            taken.total.amount,
        )
    entry = reversal_entry(
        EntryKind.REFUND_FAILED,
        lines,
        as_utc(data["failed_at"]),
        description=f"Refund {refund_id} of gift {data['donation_id']} failed",
    )
    about = EntryReferences(
        event.id,
        campaign_id,
        donation_id=data["donation_id"],
        stripe_object_id=refund_id,
        charge_id=booked.charge_id or gift.charge_id,
        balance_transaction_id=data["balance_transaction_id"],
    )
    uow.journal.post(entry, about)
    _change_gift(uow, gift, gift.refund_failed(taken))
    uow.campaigns.save_totals(campaign_id, totals.with_refunded(-taken.total))
    recount(uow, event, campaign_id)


def dispute_opened(event: CloudEvent, uow: UnitOfWork) -> None:
    """Book a dispute's opening once: Stripe withdrew the amount (held as disputed funds) and
    charged its fee. Meals are not touched until the dispute is lost."""
    data = event.data
    uow.campaigns.lock_totals(data["campaign_id"])
    if uow.journal.entry_of([EntryKind.DISPUTE_OPENED], data["dispute_id"]):
        return
    gift = _booked_gift(uow, data)
    amount = Money(data["amount"], data["currency"])
    entry = dispute_opened_entry(
        amount,
        Money(data["fee"], amount.currency),
        as_utc(data["opened_at"]),
        description=f"Dispute {data['dispute_id']} opened on gift {data['donation_id']}",
    )
    _post_for_gift(uow, entry, event, gift, stripe_object_id=data["dispute_id"])


def dispute_closed(event: CloudEvent, uow: UnitOfWork) -> None:
    """Book a dispute's end once: won, Stripe reinstates the amount (and the fee where it
    says so); lost, the money is gone to the donor's bank, like a refund, and meals are
    recounted."""
    data = event.data
    campaign_id = data["campaign_id"]
    totals = uow.campaigns.lock_totals(campaign_id)
    if uow.journal.entry_of([EntryKind.DISPUTE_WON, EntryKind.DISPUTE_LOST], data["dispute_id"]):
        return
    gift = _booked_gift(uow, data)
    assert totals is not None
    opened = uow.journal.entry_of([EntryKind.DISPUTE_OPENED], data["dispute_id"])
    amount = Money(data["amount"], data["currency"])
    when = as_utc(data["closed_at"])
    what = f"Dispute {data['dispute_id']} {data['status']} on gift {data['donation_id']}"
    if data["status"] == "won":
        if opened is None:
            log.warning("dispute %s won but never seen open: nothing to book", data["dispute_id"])
            return
        reinstated = Money(data["amount_reinstated"] or data["amount"], amount.currency)
        fee_back = Money(data["fee_reinstated"], amount.currency)
        entry = dispute_won_entry(reinstated, fee_back, when, what)
        _post_for_gift(uow, entry, event, gift, stripe_object_id=data["dispute_id"])
        return
    if not amount.is_positive():
        raise PoisonEvent(f"dispute {data['dispute_id']} lost nothing")
    back = _give_back(gift, amount)
    entry = dispute_lost_entry(campaign_id, back, opened is not None, when, what)
    _post_for_gift(uow, entry, event, gift, stripe_object_id=data["dispute_id"])
    _change_gift(uow, gift, gift.lost_in_dispute(back))
    recount(uow, event, campaign_id)


def payout_paid(event: CloudEvent, uow: UnitOfWork) -> None:
    """Book a payout once: Stripe moved the amount from our Stripe balance to the bank; the
    balance transactions it settled are kept for reconciliation."""
    data = event.data
    if uow.journal.entry_of([EntryKind.PAYOUT], data["payout_id"]):
        return
    uow.journal.record_payout_items(data["payout_id"], data["balance_transaction_ids"])
    if data["amount"] == 0:
        return
    entry = payout_entry(
        Money(data["amount"], data["currency"]),
        as_utc(data["arrival_date"]),
        description=f"Payout {data['payout_id']} to the bank",
    )
    uow.journal.post(entry, EntryReferences(event.id, None, stripe_object_id=data["payout_id"]))


# --- what the handlers of a gift's money share --------------------------------------------------


def _gift_booking(data: dict[str, Any], policy: str) -> GiftBooking:
    """A succeeded donation's money as the books need it; a gift whose figures cannot be true
    is refused (it could never be booked)."""
    amount = Money(data["amount"], data["currency"])
    with _never_applicable():
        fee = stripe_fee(amount, data["fee"], data["net"])
    with _never_applicable(f"donation {data['donation_id']}: "):
        return GiftBooking(
            amount=amount,
            fee_covered=Money(data["fee_covered"], amount.currency),
            fee=fee,
            policy=FeePolicy(policy),
        )


def _booked_gift(uow: UnitOfWork, data: dict[str, Any]) -> BookedGift:
    """The booked gift a refund or dispute is about, locked; refused if the ledger never
    booked it (re-sync from Stripe recovers the gift, then the event can be replayed)."""
    donation_id = data["donation_id"]
    gift = uow.gifts.get(donation_id, lock=True)
    if gift is None:
        raise PoisonEvent(f"gift {donation_id} was never booked")
    if gift.campaign_id != data["campaign_id"] or gift.currency != data["currency"]:
        raise PoisonEvent(f"gift {donation_id} belongs to {gift.campaign_id} in {gift.currency}")
    return gift


def _give_back(gift: BookedGift, amount: Money) -> ReturnToDonor:
    """Split money going back to the donor; more than the gift can never be applied."""
    with _never_applicable(f"gift {gift.donation_id}: "):
        return gift.give_back(amount)


def _post_for_gift(
    uow: UnitOfWork,
    entry: JournalEntry,
    event: CloudEvent,
    gift: BookedGift,
    stripe_object_id: str,
) -> None:
    """Post an entry about a booked gift (a refund, a dispute), keeping the event id, the
    Stripe object and the gift's charge so reconciliation can match it."""
    data = event.data
    about = EntryReferences(
        event.id,
        data["campaign_id"],
        donation_id=data["donation_id"],
        stripe_object_id=stripe_object_id,
        charge_id=data["charge_id"] or gift.charge_id,
        balance_transaction_id=data["balance_transaction_id"],
    )
    uow.journal.post(entry, about)


def _change_gift(uow: UnitOfWork, before: BookedGift, after: BookedGift) -> None:
    """Save what a refund, a refund's failure or a lost dispute changed of a gift, and move
    the eligible amount of its price period by what the fund now keeps of it."""
    uow.gifts.save(after)
    change = after.eligible - before.eligible
    if change.amount:
        uow.campaigns.add_eligible(before.campaign_id, before.period_starts_at, change)
