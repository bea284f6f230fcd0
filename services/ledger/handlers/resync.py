"""Re-sync: book what Stripe moved and the ledger never saw (a missed webhook, a lost event).

Each Stripe balance transaction of a period or payout that no journal entry accounts for is
turned back into the event the donations service would have published, with an id derived
from the balance transaction, and applied through the same idempotent consumer path, so
running re-sync twice books nothing twice and a later arrival of the real event is
recognised (by donation, refund, dispute or payout id) and not booked again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.shared.consumer import Outcome
from services.shared.envelope import CloudEvent
from services.shared.events import DONATION_REFUNDED, DONATION_SUCCEEDED, PAYOUT_PAID

from ..domain import BalanceQuery, EntryKind, StripeUnavailable, reconcile
from .books import OpenUnitOfWork, Progress, StripeRecords, derived_id

SOURCE = "difts/ledger/resync"


@dataclass(frozen=True)
class Resync:
    """Book what Stripe moved in [since, until), or what a payout settled, that the ledger
    lacks."""

    since: datetime | None = None
    until: datetime | None = None
    payout_id: str | None = None

    @property
    def which(self) -> BalanceQuery:
        """The balance transactions to look at."""
        return BalanceQuery(self.since, self.until, self.payout_id)


def resync(
    asked: Resync,
    unit_of_work: OpenUnitOfWork,
    stripe: StripeRecords,
    book: Callable[[CloudEvent], Outcome],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Book the period's (or payout's) Stripe movements the ledger lacks; report what was
    booked, what was already there and what needs a person (with the reason).

    Each rebuilt event goes to `book` (the idempotent consumer, a transaction of its own), so
    the ledger is read in short units of work of `unit_of_work` in between: a refund must find
    the gift re-synced just before it, and no transaction waits on Stripe."""
    stripe_side = list(stripe.movements(asked.which, progress))
    # Whatever the period or payout, a movement booked at any date is not missing.
    referenced = {m.id for m in stripe_side} | {m.source for m in stripe_side if m.source}
    with unit_of_work() as uow:
        ledger_side = uow.journal.clearing_movements(referencing=referenced)
    missing = reconcile("resync", stripe_side, ledger_side).only_in_stripe
    booked: list[str] = []
    already: list[str] = []
    needs_a_person: list[dict[str, str]] = []

    def apply(what: str, event: CloudEvent) -> None:
        outcome = book(event)
        if outcome.status == "applied":
            booked.append(what)
        elif outcome.status == "duplicate":
            already.append(what)
        else:
            needs_a_person.append({"balance_transaction": what, "reason": outcome.reason or ""})

    # Oldest first and one at a time, so a refund finds the gift re-synced just before it.
    for row in sorted(missing, key=lambda found: found["created"]):
        try:
            event = _rebuild(row, unit_of_work, stripe)
        except (LookupError, StripeUnavailable) as error:
            needs_a_person.append(
                {"balance_transaction": row["balance_transaction"], "reason": str(error)}
            )
            continue
        apply(row["balance_transaction"], event)
    if asked.payout_id is not None:
        with unit_of_work() as uow:
            known = uow.journal.entry_of([EntryKind.PAYOUT], asked.payout_id) is not None
        if known:
            already.append(asked.payout_id)
        else:
            apply(asked.payout_id, _payout_event(stripe, asked.payout_id))
    if progress is not None:
        progress(len(stripe_side))
    return {
        "stripe_movements": len(stripe_side),
        "missing_from_ledger": len(missing),
        "booked": booked,
        "already_booked": already,
        "needs_a_person": needs_a_person,
    }


def _rebuilt(event_id: str, type_: str, data: dict[str, Any], **extra: Any) -> CloudEvent:
    return CloudEvent(
        id=derived_id("resync", event_id),
        type=type_,
        source=SOURCE,
        time=datetime.now(UTC),
        data=data,
        **extra,
    )


def _rebuild(
    row: dict[str, Any], unit_of_work: OpenUnitOfWork, stripe: StripeRecords
) -> CloudEvent:
    """The event that would have booked one balance transaction; LookupError when the
    ledger cannot tell what it was for."""
    kind, source, txn = row["type"], row["source"], row["balance_transaction"]
    if kind in ("charge", "payment"):
        charge = stripe.charge(source)
        metadata = charge.metadata
        if metadata.get("programme_id"):
            # A company's programme funding: the donations service announces it
            # (programme_funded); re-sync never invents a gift from it.
            raise LookupError(
                f"charge {source} funds programme {metadata['programme_id']}, not a gift"
            )
        if not metadata.get("donation_id") or not metadata.get("campaign_id"):
            raise LookupError(f"charge {source} carries no donation_id/campaign_id metadata")
        with unit_of_work() as uow:
            campaign = uow.campaigns.get(metadata["campaign_id"])
        if campaign is None:
            raise LookupError(f"campaign {metadata['campaign_id']} is unknown to the ledger")
        details = stripe.movement(txn)
        return _rebuilt(
            txn,
            DONATION_SUCCEEDED,
            {
                "donation_id": metadata["donation_id"],
                "campaign_id": campaign.campaign_id,
                "campaign_slug": campaign.slug,
                "campaign_title": campaign.title,
                "amount": charge.amount,
                "currency": charge.currency,
                "meal_price": campaign.meal_price,
                "fee_covered": int(metadata.get("fee_covered", 0) or 0),
                "fee": details.fee,
                "net": details.net,
                "donor": {"email": charge.email or "unknown-donor@difts.invalid"},
                "payment_intent_id": charge.payment_intent,
                "charge_id": source,
                "balance_transaction_id": txn,
                "succeeded_at": charge.created.isoformat(),
            },
            subject=f"donations/{metadata['donation_id']}",
        )
    if kind in ("refund", "payment_refund"):
        refund = stripe.refund(source)
        charge_id = refund.charge_id
        with unit_of_work() as uow:
            gift = uow.gifts.by_charge(charge_id) if charge_id else None
            campaign = uow.campaigns.get(gift.campaign_id) if gift else None
        if gift is None or campaign is None:
            raise LookupError(f"refund {source}: its charge {charge_id} was never booked")
        returned = gift.returned.amount + refund.amount
        return _rebuilt(
            txn,
            DONATION_REFUNDED,
            {
                "donation_id": gift.donation_id,
                "campaign_id": gift.campaign_id,
                "campaign_slug": campaign.slug,
                "refund_id": source,
                "charge_id": charge_id,
                "amount": refund.amount,
                "currency": gift.currency,
                "total_refunded": returned,
                "fully_refunded": returned == gift.booking.amount.amount,
                "fee_refunded": max(0, refund.amount + int(row["net"])),
                "balance_transaction_id": txn,
                "refunded_at": row["created"].isoformat(),
            },
        )
    raise LookupError(f"a {kind} balance transaction is not re-synced automatically")


def _payout_event(stripe: StripeRecords, payout_id: str) -> CloudEvent:
    """The payout.paid event of a payout the ledger never booked."""
    payout = stripe.payout(payout_id)
    settled = [
        m.id for m in stripe.movements(BalanceQuery(payout_id=payout_id)) if m.type != "payout"
    ]
    return _rebuilt(
        f"payout/{payout_id}",
        PAYOUT_PAID,
        {
            "payout_id": payout_id,
            "amount": payout.amount,
            "currency": payout.currency,
            "arrival_date": payout.arrival_date.isoformat(),
            "balance_transaction_ids": settled,
            "paid_at": payout.arrival_date.isoformat(),
        },
    )
