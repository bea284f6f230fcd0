"""One function per event the ledger consumes: load what it needs, apply the domain's rules,
save, and queue the ledger's own events in the outbox, all in the caller's transaction.

Each handler has the signature the idempotent consumer expects, (conn, event, data): the
consumer has already recorded the event id in the same transaction, so a handler runs at most
once per event id. A handler raises PoisonEvent for an event that can never be applied.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from services.shared.consumer import PoisonEvent
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import (
    DONATION_BOOKED,
    LEDGER_TOPIC,
    MEALS_FUNDED,
    MILESTONE_REACHED,
)
from services.shared.money import Money
from services.shared.outbox import add_to_outbox

from . import store
from .domain import (
    DONOR_COVERED_FEES,
    FEES_CHARGED_TO_CAMPAIGNS,
    EntryKind,
    FeePolicy,
    GiftBooking,
    JournalEntry,
    MealCount,
    PricePeriod,
    ReturnToDonor,
    campaign_fund,
    count_meals,
    dispute_lost_entry,
    dispute_opened_entry,
    dispute_won_entry,
    gift_entries,
    highest,
    milestones_crossed,
    month_start,
    payout_entry,
    period_for,
    refund_entry,
    return_to_donor,
    reversal_entry,
)

log = logging.getLogger(__name__)

SOURCE = "difts/ledger"
# The donations service's events: the gifts it announces carry their donor for the receipt.
DONATIONS_SOURCE = "difts/donations"


def campaign_published(conn: Connection, event: CloudEvent, data: dict[str, Any]) -> None:
    """Keep the ledger's projection of a campaign up to date (its currency and meal price
    decide how money becomes meals). The meal price here is the one in force now: a different
    one corrects the price of the period in force at the event's time and recounts."""
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
    periods = store.price_periods(conn, campaign_id)
    if not periods:
        store.add_price_period(conn, campaign_id, EPOCH, data["meal_price"])
        return
    in_force = period_for(periods, store.utc(event.time))
    if in_force.meal_price.amount != data["meal_price"]:
        store.add_price_period(conn, campaign_id, in_force.starts_at, data["meal_price"])
    _recount(conn, event, campaign_id)


def meal_price_changed(conn: Connection, event: CloudEvent, data: dict[str, Any]) -> None:
    """A new meal price from a date on: gifts dated before it keep the old price, gifts from
    it on (even ones booked already, if the change arrives late) count at the new one; the
    remainder carried into the new period is valued at the new price."""
    campaign_id = data["campaign_id"]
    effective_from = store.utc(data["effective_from"])
    campaign = store.campaign_by_id(conn, campaign_id)
    if campaign is None:
        # The change may arrive before the campaign's projection: it carries enough of it.
        _refuse_taken_slug(conn, campaign_id, data["slug"])
        store.upsert_campaign(
            conn,
            {
                "campaign_id": campaign_id,
                "slug": data["slug"],
                "title": data["slug"],
                "currency": data["currency"],
                "meal_price": data["previous_meal_price"],
                "goal_meals": None,
            },
            replace=False,
        )
        store.add_price_period(conn, campaign_id, EPOCH, data["previous_meal_price"])
        campaign = store.campaign_by_id(conn, campaign_id)
        assert campaign is not None
    if campaign.currency != data["currency"]:
        raise PoisonEvent(f"campaign {campaign_id} counts meals in {campaign.currency}")
    store.lock_totals(conn, campaign_id)
    periods = store.price_periods(conn, campaign_id)
    if not periods:
        store.add_price_period(conn, campaign_id, EPOCH, data["previous_meal_price"])
        periods = store.price_periods(conn, campaign_id)
    containing = period_for(periods, effective_from)
    store.add_price_period(conn, campaign_id, effective_from, data["meal_price"])
    if containing.starts_at < effective_from:
        store.move_gifts_between_periods(conn, campaign_id, effective_from, containing.starts_at)
    now_price = period_for(store.price_periods(conn, campaign_id), store.utc(event.time))
    store.set_meal_price(conn, campaign_id, now_price.meal_price.amount)
    _recount(conn, event, campaign_id)


def donation_succeeded(conn: Connection, event: CloudEvent, data: dict[str, Any]) -> None:
    """Book a confirmed gift once: the gift's entries (net to Stripe clearing, Stripe's fee,
    the donor's cover, the campaign's fund, and the fee charged to the fund under that
    policy), the campaign's new totals and meals, and the ledger's events: what the gift did
    (donation_booked), the new meal count and any milestone crossed."""
    campaign_id = data["campaign_id"]
    donation_id = data["donation_id"]
    amount = Money(data["amount"], data["currency"])
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
                "currency": amount.currency,
                "meal_price": data["meal_price"],
                "goal_meals": None,
            },
            replace=False,
        )
        campaign = store.campaign_by_id(conn, campaign_id)
        assert campaign is not None
    if amount.currency != campaign.currency:
        raise PoisonEvent(
            f"donation {donation_id} is in {amount.currency}, campaign {campaign_id} in "
            f"{campaign.currency}"
        )
    totals = store.lock_totals(conn, campaign_id)
    if store.gift_already_booked(conn, donation_id):
        # The same payment confirmed under another event id: it is counted already.
        log.warning("gift %s already booked; not counted again", donation_id)
        return
    if data["charge_id"] and store.entry_of(conn, [EntryKind.DONATION], data["charge_id"]):
        raise PoisonEvent(f"charge {data['charge_id']} is booked already for another donation")
    gift = _gift_booking(data, campaign.fee_policy)
    effective_at = store.utc(data["succeeded_at"])
    description = f"Gift {donation_id} to {campaign.slug}"
    for entry in gift_entries(campaign_id, gift, effective_at, description):
        donation = entry.kind is EntryKind.DONATION
        store.post_entry(
            conn,
            entry,
            event_id=event.id,
            campaign_id=campaign_id,
            donation_id=donation_id if donation else None,
            stripe_reference=data["payment_intent_id"] or data["checkout_session_id"],
            stripe_object_id=data["charge_id"],
            charge_id=data["charge_id"],
            balance_transaction_id=data["balance_transaction_id"] if donation else None,
        )
    periods = _periods(conn, campaign_id, campaign.meal_price)
    before = count_meals(periods)
    period = period_for(periods, effective_at)
    share = Money(max(0, gift.fund_share.amount), amount.currency)
    store.add_eligible(conn, campaign_id, period.starts_at, share.amount)
    after = count_meals(
        [
            replace(p, eligible=p.eligible + share) if p.starts_at == period.starts_at else p
            for p in periods
        ]
    )
    gift_meals = after.meals_funded - before.meals_funded
    store.insert_gift(
        conn,
        donation_id=donation_id,
        campaign_id=campaign_id,
        currency=amount.currency,
        amount=amount.amount,
        fee_covered=gift.fee_covered.amount,
        fee=gift.fee.amount if gift.fee is not None else None,
        fee_policy=gift.policy.value,
        charge_id=data["charge_id"],
        effective_at=effective_at,
        period_starts_at=period.starts_at,
        fund_balance=gift.fund_share.amount,
        meals=gift_meals,
    )
    store.save_totals(
        conn,
        campaign_id,
        donated=totals.donated + amount.amount,
        donations=totals.donations + 1,
        meals_funded=after.meals_funded,
        remainder=after.remainder.amount,
    )
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
            "receipt": _receipt_facts(event, data),
        },
        subject=f"donations/{donation_id}",
        correlation_id=event.correlationid,
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SOURCE}/{DONATION_BOOKED}/{donation_id}")),
    )
    add_to_outbox(conn, store.outbox, LEDGER_TOPIC, campaign_id, booked)
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


def _receipt_facts(event: CloudEvent, data: dict[str, Any]) -> dict[str, Any] | None:
    """What the donor's receipt states besides the ledger's figures, passed on from the
    donations service's event; none for a gift re-synced from Stripe, whose donor the ledger
    cannot vouch for (no receipt goes to it)."""
    if event.source != DONATIONS_SOURCE:
        return None
    return {
        "donor": dict(data["donor"]),
        "campaign_title": data["campaign_title"],
        "campaign_cause": data.get("campaign_cause", ""),
        "succeeded_at": store.utc(data["succeeded_at"]).isoformat(),
    }


def donation_refunded(conn: Connection, event: CloudEvent, data: dict[str, Any]) -> None:
    """Book one refund (full or partial) once per refund id: the fund and the donor-covered
    fee income give the money back in the gift's proportion, Stripe clearing pays it less the
    fee Stripe returns; the campaign's meals are recounted."""
    campaign_id = data["campaign_id"]
    totals = store.lock_totals_if_any(conn, campaign_id)
    if store.entry_of(conn, [EntryKind.REFUND], data["refund_id"]):
        log.warning("refund %s already booked", data["refund_id"])
        return
    gift_row, gift = _booked_gift(conn, data["donation_id"], campaign_id, data["currency"])
    assert totals is not None
    amount = Money(data["amount"], data["currency"])
    back = _return(gift, gift_row, amount)
    fee_refunded = Money(data["fee_refunded"], amount.currency)
    fee_back = Money(0, amount.currency)
    if gift.policy is FeePolicy.CAMPAIGN:
        still_charged = gift.charged_to_fund.amount - gift_row.fee_back_to_fund
        fee_back = Money(min(fee_refunded.amount, max(0, still_charged)), amount.currency)
    entry = refund_entry(
        campaign_id,
        back,
        fee_refunded,
        fee_back,
        store.utc(data["refunded_at"]),
        description=f"Refund {data['refund_id']} of gift {data['donation_id']}",
    )
    _post_for_gift(conn, entry, event, data, gift_row, stripe_object_id=data["refund_id"])
    _change_gift(
        conn,
        gift_row,
        returned=gift_row.returned + amount.amount,
        fund_balance=gift_row.fund_balance - back.from_fund.amount + fee_back.amount,
        fee_back_to_fund=gift_row.fee_back_to_fund + fee_back.amount,
    )
    store.save_totals(conn, campaign_id, refunded=totals.refunded + amount.amount)
    _recount(conn, event, campaign_id)


def donation_refund_failed(conn: Connection, event: CloudEvent, data: dict[str, Any]) -> None:
    """A booked refund failed at Stripe (the money came back to our balance, never reached the
    donor): post one entry that reverses the refund's entry line for line, give the gift and
    the campaign back what the refund took, and recount the meals. A refund the ledger never
    booked has nothing to reverse."""
    campaign_id = data["campaign_id"]
    refund_id = data["refund_id"]
    totals = store.lock_totals_if_any(conn, campaign_id)
    if store.entry_of(conn, [EntryKind.REFUND_FAILED], refund_id):
        log.warning("failure of refund %s already booked", refund_id)
        return
    booked = store.entry_of(conn, [EntryKind.REFUND], refund_id)
    if booked is None:
        log.warning("refund %s failed but was never booked: nothing to reverse", refund_id)
        return
    gift_row, _gift = _booked_gift(conn, data["donation_id"], campaign_id, data["currency"])
    assert totals is not None
    lines = store.entry_lines(conn, booked.id)
    fund = campaign_fund(campaign_id)
    # What the refund's entry took: from the fund (net of any fee it gave back to the fund),
    # from the donor-covered fee income, and the fee it gave back to the fund.
    fund_net = sum(line.amount.amount for line in lines if line.account == fund)
    covered = sum(line.amount.amount for line in lines if line.account == DONOR_COVERED_FEES)
    fee_back = sum(
        line.amount.amount for line in lines if line.account == FEES_CHARGED_TO_CAMPAIGNS
    )
    returned = fund_net + covered + fee_back
    if returned != data["amount"]:
        log.warning(
            "refund %s failed for %s but was booked for %s; the booking is reversed",
            refund_id,
            data["amount"],
            returned,
        )
    entry = reversal_entry(
        EntryKind.REFUND_FAILED,
        lines,
        store.utc(data["failed_at"]),
        description=f"Refund {refund_id} of gift {data['donation_id']} failed",
    )
    store.post_entry(
        conn,
        entry,
        event_id=event.id,
        campaign_id=campaign_id,
        donation_id=data["donation_id"],
        stripe_object_id=refund_id,
        charge_id=booked.charge_id or gift_row.charge_id,
        balance_transaction_id=data["balance_transaction_id"],
    )
    _change_gift(
        conn,
        gift_row,
        returned=gift_row.returned - returned,
        fund_balance=gift_row.fund_balance + fund_net,
        fee_back_to_fund=gift_row.fee_back_to_fund - fee_back,
    )
    store.save_totals(conn, campaign_id, refunded=totals.refunded - returned)
    _recount(conn, event, campaign_id)


def dispute_opened(conn: Connection, event: CloudEvent, data: dict[str, Any]) -> None:
    """Book a dispute's opening once: Stripe withdrew the amount (held as disputed funds) and
    charged its fee. Meals are not touched until the dispute is lost."""
    campaign_id = data["campaign_id"]
    store.lock_totals_if_any(conn, campaign_id)
    if store.entry_of(conn, [EntryKind.DISPUTE_OPENED], data["dispute_id"]):
        return
    gift_row, _gift = _booked_gift(conn, data["donation_id"], campaign_id, data["currency"])
    amount = Money(data["amount"], data["currency"])
    entry = dispute_opened_entry(
        amount,
        Money(data["fee"], amount.currency),
        store.utc(data["opened_at"]),
        description=f"Dispute {data['dispute_id']} opened on gift {data['donation_id']}",
    )
    _post_for_gift(conn, entry, event, data, gift_row, stripe_object_id=data["dispute_id"])


def dispute_closed(conn: Connection, event: CloudEvent, data: dict[str, Any]) -> None:
    """Book a dispute's end once: won, Stripe reinstates the amount (and the fee where it
    says so); lost, the money is gone to the donor's bank, like a refund, and meals are
    recounted."""
    campaign_id = data["campaign_id"]
    totals = store.lock_totals_if_any(conn, campaign_id)
    closing = [EntryKind.DISPUTE_WON, EntryKind.DISPUTE_LOST]
    if store.entry_of(conn, closing, data["dispute_id"]):
        return
    gift_row, gift = _booked_gift(conn, data["donation_id"], campaign_id, data["currency"])
    assert totals is not None
    opened = store.entry_of(conn, [EntryKind.DISPUTE_OPENED], data["dispute_id"])
    amount = Money(data["amount"], data["currency"])
    when = store.utc(data["closed_at"])
    what = f"Dispute {data['dispute_id']} {data['status']} on gift {data['donation_id']}"
    if data["status"] == "won":
        if opened is None:
            log.warning("dispute %s won but never seen open: nothing to book", data["dispute_id"])
            return
        reinstated = Money(data["amount_reinstated"] or data["amount"], amount.currency)
        fee_back = Money(data["fee_reinstated"], amount.currency)
        entry = dispute_won_entry(reinstated, fee_back, when, what)
    else:
        if not amount.is_positive():
            raise PoisonEvent(f"dispute {data['dispute_id']} lost nothing")
        back = _return(gift, gift_row, amount)
        entry = dispute_lost_entry(campaign_id, back, opened is not None, when, what)
    _post_for_gift(conn, entry, event, data, gift_row, stripe_object_id=data["dispute_id"])
    if data["status"] == "lost":
        _change_gift(
            conn,
            gift_row,
            returned=gift_row.returned + amount.amount,
            fund_balance=gift_row.fund_balance - back.from_fund.amount,
        )
        _recount(conn, event, campaign_id)


def payout_paid(conn: Connection, event: CloudEvent, data: dict[str, Any]) -> None:
    """Book a payout once: Stripe moved the amount from our Stripe balance to the bank; the
    balance transactions it settled are kept for reconciliation."""
    if store.entry_of(conn, [EntryKind.PAYOUT], data["payout_id"]):
        return
    store.record_payout_items(conn, data["payout_id"], data["balance_transaction_ids"])
    if data["amount"] == 0:
        return
    entry = payout_entry(
        Money(data["amount"], data["currency"]),
        store.utc(data["arrival_date"]),
        description=f"Payout {data['payout_id']} to the bank",
    )
    store.post_entry(
        conn,
        entry,
        event_id=event.id,
        campaign_id=None,
        stripe_object_id=data["payout_id"],
    )


# --- finance staff's commands ----------------------------------------------------------------


class Refused(ValueError):
    """A finance command that cannot be carried out, with the reason."""


def close_period(conn: Connection, month: str, closed_by: str) -> bool:
    """Close a month ("YYYY-MM") to new postings: entries dated in it from now on are posted
    at the start of the next open month. False if it was closed already."""
    try:
        month_start(month)
    except ValueError as error:
        raise Refused(f"a period is a month written YYYY-MM, not {month!r}") from error
    if len(month) != 7:
        raise Refused(f"a period is a month written YYYY-MM, not {month!r}")
    return store.close_period(conn, month, closed_by)


def set_fee_policy(conn: Connection, slug: str, policy: str) -> None:
    """Choose who bears the processing fees of a campaign's gifts booked from now on."""
    try:
        chosen = FeePolicy(policy)
    except ValueError as error:
        raise Refused(f"fee policy is one of {[p.value for p in FeePolicy]}") from error
    campaign_id = store.campaign_id_with_slug(conn, slug)
    if campaign_id is None:
        raise Refused(f"no campaign {slug!r} in the ledger")
    store.set_fee_policy(conn, campaign_id, chosen.value)


# --- the rules shared by the handlers --------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Where a campaign's first price period starts: every gift falls after it."""


def _gift_booking(data: dict[str, Any], policy: str) -> GiftBooking:
    """A succeeded donation's money as the books need it; a gift whose figures cannot be true
    is refused (it could never be booked)."""
    currency = data["currency"]
    fee, net = data["fee"], data["net"]
    if fee is None and net is not None:
        fee = data["amount"] - net
    if fee is not None and net is not None and fee + net != data["amount"]:
        raise PoisonEvent(f"fee {fee} and net {net} do not add up to {data['amount']}")
    try:
        return GiftBooking(
            amount=Money(data["amount"], currency),
            fee_covered=Money(data["fee_covered"], currency),
            fee=Money(fee, currency) if fee is not None else None,
            policy=FeePolicy(policy),
        )
    except ValueError as error:
        raise PoisonEvent(f"donation {data['donation_id']}: {error}") from error


def _booked_gift(
    conn: Connection, donation_id: str, campaign_id: str, currency: str
) -> tuple[Any, GiftBooking]:
    """The booked gift a refund or dispute is about, locked; refused if the ledger never
    booked it (re-sync from Stripe recovers the gift, then the event can be replayed)."""
    row = store.gift_of(conn, donation_id, lock=True)
    if row is None:
        raise PoisonEvent(f"gift {donation_id} was never booked")
    if row.campaign_id != campaign_id or row.currency != currency:
        raise PoisonEvent(f"gift {donation_id} belongs to {row.campaign_id} in {row.currency}")
    gift = GiftBooking(
        amount=Money(row.amount, row.currency),
        fee_covered=Money(row.fee_covered, row.currency),
        fee=Money(row.fee, row.currency) if row.fee is not None else None,
        policy=FeePolicy(row.fee_policy),
    )
    return row, gift


def _return(gift: GiftBooking, row: Any, amount: Money) -> ReturnToDonor:
    """Split money going back to the donor; more than the gift can never be applied."""
    currency = gift.amount.currency
    # What earlier returns still standing took from the donor's cover: the rest of what went
    # back came out of the fund (whose share the fee given back to it tops up).
    given_back_by_fund = gift.fund_share.amount + row.fee_back_to_fund - row.fund_balance
    covered_back = Money(row.returned - given_back_by_fund, currency)
    try:
        return return_to_donor(gift, Money(row.returned, currency), amount, covered_back)
    except ValueError as error:
        raise PoisonEvent(f"gift {row.donation_id}: {error}") from error


def _post_for_gift(
    conn: Connection,
    entry: JournalEntry,
    event: CloudEvent,
    data: dict[str, Any],
    gift_row: Any,
    stripe_object_id: str,
) -> None:
    """Post an entry about a booked gift (a refund, a dispute), keeping the event id, the
    Stripe object and the gift's charge so reconciliation can match it."""
    store.post_entry(
        conn,
        entry,
        event_id=event.id,
        campaign_id=data["campaign_id"],
        donation_id=data["donation_id"],
        stripe_object_id=stripe_object_id,
        charge_id=data["charge_id"] or gift_row.charge_id,
        balance_transaction_id=data["balance_transaction_id"],
    )


def _change_gift(conn: Connection, row: Any, **values: Any) -> None:
    """Save what a refund or lost dispute changed of a gift, and move the eligible amount of
    its price period by what the fund now keeps of it (never below zero)."""
    store.update_gift(conn, row.donation_id, **values)
    if "fund_balance" in values:
        change = max(0, values["fund_balance"]) - max(0, row.fund_balance)
        if change:
            store.add_eligible(conn, row.campaign_id, store.utc(row.period_starts_at), change)


def _periods(conn: Connection, campaign_id: str, meal_price: int) -> list[PricePeriod]:
    """A campaign's price periods, starting the first one if it has none yet."""
    periods = store.price_periods(conn, campaign_id)
    if not periods:
        store.add_price_period(conn, campaign_id, EPOCH, meal_price)
        periods = store.price_periods(conn, campaign_id)
    return periods


def _recount(conn: Connection, event: CloudEvent, campaign_id: str) -> None:
    """Recount a campaign's meals over its price periods, announcing any change."""
    campaign = store.campaign_by_id(conn, campaign_id)
    assert campaign is not None
    totals = store.lock_totals(conn, campaign_id)
    count = count_meals(_periods(conn, campaign_id, campaign.meal_price))
    store.save_totals(
        conn, campaign_id, meals_funded=count.meals_funded, remainder=count.remainder.amount
    )
    if count.meals_funded != totals.meals_funded:
        _announce_meals(conn, event, campaign, count, previous=totals.meals_funded)


def _refuse_taken_slug(conn: Connection, campaign_id: str, slug: str) -> None:
    """Two campaigns cannot share a slug; an event claiming one can never be applied (and a
    unique violation would otherwise be retried forever)."""
    holder = store.campaign_id_with_slug(conn, slug)
    if holder is not None and holder != campaign_id:
        raise PoisonEvent(f"slug {slug!r} belongs to campaign {holder}, not {campaign_id}")


def _announce_meals(
    conn: Connection,
    cause: CloudEvent,
    campaign: Any,
    count: MealCount,
    *,
    previous: int,
    donation_id: str | None = None,
    donation_meals: int = 0,
) -> None:
    """Queue difts.ledger.meals_funded.v1 in the outbox, keyed by campaign so a campaign's
    counts reach consumers in order, and one milestone event naming the milestones crossed for
    the first time. The meals event's id derives from the causing event's, so replays announce
    under the same ids; each milestone goes out once even if the count falls back and rises
    again."""
    announcement = new_event(
        MEALS_FUNDED,
        SOURCE,
        {
            "campaign_id": campaign.campaign_id,
            "campaign_slug": campaign.slug,
            "currency": campaign.currency,
            "meal_price": count.meal_price.amount,
            "meals_funded": count.meals_funded,
            "previous_meals_funded": previous,
            "remainder": count.remainder.amount,
            "donation_id": donation_id,
            "donation_meals": donation_meals,
        },
        subject=f"campaigns/{campaign.campaign_id}",
        correlation_id=cause.correlationid,
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SOURCE}/{MEALS_FUNDED}/{cause.id}")),
    )
    add_to_outbox(conn, store.outbox, LEDGER_TOPIC, campaign.campaign_id, announcement)
    crossed = milestones_crossed(previous, count.meals_funded, campaign.goal_meals)
    first_time = store.claim_milestones(
        conn, campaign.campaign_id, [m.name for m in crossed], store.utc(cause.time)
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
            "campaign_id": campaign.campaign_id,
            "campaign_slug": campaign.slug,
            "milestone": top.name,
            "kind": top.kind,
            "value": top.value,
            "meals": top.meals,
            "milestones": [
                {"milestone": m.name, "kind": m.kind, "value": m.value, "meals": m.meals}
                for m in fresh
            ],
            "meals_funded": count.meals_funded,
            "goal_meals": campaign.goal_meals,
            "reached_at": cause.time.isoformat(),
        },
        subject=f"campaigns/{campaign.campaign_id}",
        correlation_id=cause.correlationid,
        event_id=str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"{SOURCE}/milestone/{campaign.campaign_id}/{top.name}")
        ),
    )
    add_to_outbox(conn, store.outbox, LEDGER_TOPIC, campaign.campaign_id, reached)
