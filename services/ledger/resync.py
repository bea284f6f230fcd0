"""Re-sync: book what Stripe moved and the ledger never saw (a missed webhook, a lost event).

Each Stripe balance transaction of a period or payout that no journal entry accounts for is
turned back into the event the donations service would have published, with an id derived
from the balance transaction, and applied through the same idempotent consumer path, so
running re-sync twice books nothing twice and a later arrival of the real event is
recognised (by donation, refund, dispute or payout id) and not booked again.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import stripe
from sqlalchemy import Engine

from services.shared.consumer import IdempotentConsumer
from services.shared.envelope import CloudEvent
from services.shared.events import DONATION_REFUNDED, DONATION_SUCCEEDED, PAYOUT_PAID

from . import store
from .reconciliation import Progress, StripeBalance, ledger_movements, reconcile

log = logging.getLogger(__name__)

SOURCE = "difts/ledger/resync"


def _event_id(balance_transaction_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{SOURCE}/{balance_transaction_id}"))


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(int(timestamp), tz=UTC).isoformat()


def resync_from_stripe(
    engine: Engine,
    consumer: IdempotentConsumer,
    balance: StripeBalance,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    payout_id: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Book the period's (or payout's) Stripe movements the ledger lacks; report what was
    booked, what was already there and what needs a person (with the reason)."""
    stripe_side = list(
        balance.movements(since=since, until=until, payout_id=payout_id, progress=progress)
    )
    with engine.connect() as conn:
        # Whatever the period or payout, a movement booked at any date is not missing.
        ledger_side = ledger_movements(
            conn,
            referencing={m.id for m in stripe_side} | {m.source for m in stripe_side if m.source},
        )
    missing = reconcile("resync", stripe_side, ledger_side).only_in_stripe
    booked: list[str] = []
    already: list[str] = []
    needs_a_person: list[dict[str, str]] = []

    def book(what: str, event: CloudEvent) -> None:
        outcome = consumer.apply(event.to_json().encode())
        if outcome.status == "applied":
            booked.append(what)
        elif outcome.status == "duplicate":
            already.append(what)
        else:
            needs_a_person.append({"balance_transaction": what, "reason": outcome.reason or ""})

    # Oldest first and one at a time, so a refund finds the gift re-synced just before it.
    for row in sorted(missing, key=lambda found: found["created"]):
        try:
            event = _rebuild(engine, balance.client, row)
        except (LookupError, stripe.StripeError) as error:
            needs_a_person.append(
                {"balance_transaction": row["balance_transaction"], "reason": str(error)}
            )
            continue
        book(row["balance_transaction"], event)
    if payout_id is not None:
        with engine.connect() as conn:
            known = store.entry_of(conn, ["payout"], payout_id) is not None
        if known:
            already.append(payout_id)
        else:
            book(payout_id, _payout_event(balance, payout_id))
    if progress is not None:
        progress(len(stripe_side))
    return {
        "stripe_movements": len(stripe_side),
        "missing_from_ledger": len(missing),
        "booked": booked,
        "already_booked": already,
        "needs_a_person": needs_a_person,
    }


def _rebuild(engine: Engine, client: stripe.StripeClient, row: dict[str, Any]) -> CloudEvent:
    """The event that would have booked one balance transaction."""
    kind, source, txn = row["type"], row["source"], row["balance_transaction"]
    if kind in ("charge", "payment"):
        charge = client.v1.charges.retrieve(source)
        metadata: dict[str, Any] = charge.metadata.to_dict() if charge.metadata else {}
        if not metadata.get("donation_id") or not metadata.get("campaign_id"):
            raise LookupError(f"charge {source} carries no donation_id/campaign_id metadata")
        with engine.connect() as conn:
            campaign = store.campaign_by_id(conn, metadata["campaign_id"])
        if campaign is None:
            raise LookupError(f"campaign {metadata['campaign_id']} is unknown to the ledger")
        details = client.v1.balance_transactions.retrieve(txn)
        email = charge.receipt_email or getattr(charge.billing_details, "email", None)
        return CloudEvent(
            id=_event_id(txn),
            type=DONATION_SUCCEEDED,
            source=SOURCE,
            time=datetime.now(UTC),
            subject=f"donations/{metadata['donation_id']}",
            data={
                "donation_id": metadata["donation_id"],
                "campaign_id": campaign.campaign_id,
                "campaign_slug": campaign.slug,
                "campaign_title": campaign.title,
                "amount": int(charge.amount),
                "currency": str(charge.currency).upper(),
                "meal_price": campaign.meal_price,
                "fee_covered": int(metadata.get("fee_covered", 0) or 0),
                "fee": int(details.fee),
                "net": int(details.net),
                "donor": {"email": email or "unknown-donor@difts.invalid"},
                "payment_intent_id": charge.payment_intent
                if isinstance(charge.payment_intent, str)
                else None,
                "charge_id": source,
                "balance_transaction_id": txn,
                "succeeded_at": _when(charge.created),
            },
        )
    if kind in ("refund", "payment_refund"):
        refund = client.v1.refunds.retrieve(source)
        charge_id = refund.charge if isinstance(refund.charge, str) else None
        with engine.connect() as conn:
            gift = store.gift_by_charge(conn, charge_id) if charge_id else None
            campaign = store.campaign_by_id(conn, gift.campaign_id) if gift else None
        if gift is None or campaign is None:
            raise LookupError(f"refund {source}: its charge {charge_id} was never booked")
        return CloudEvent(
            id=_event_id(txn),
            type=DONATION_REFUNDED,
            source=SOURCE,
            time=datetime.now(UTC),
            data={
                "donation_id": gift.donation_id,
                "campaign_id": gift.campaign_id,
                "campaign_slug": campaign.slug,
                "refund_id": source,
                "charge_id": charge_id,
                "amount": int(refund.amount),
                "currency": gift.currency,
                "total_refunded": gift.returned + int(refund.amount),
                "fully_refunded": gift.returned + int(refund.amount) == gift.amount,
                "fee_refunded": max(0, int(refund.amount) + int(row["net"])),
                "balance_transaction_id": txn,
                "refunded_at": row["created"].isoformat(),
            },
        )
    raise LookupError(f"a {kind} balance transaction is not re-synced automatically")


def _payout_event(balance: StripeBalance, payout_id: str) -> CloudEvent:
    """The payout.paid event of a payout the ledger never booked."""
    payout = balance.client.v1.payouts.retrieve(payout_id)
    settled = [m.id for m in balance.movements(payout_id=payout_id) if m.type != "payout"]
    return CloudEvent(
        id=_event_id(f"payout/{payout_id}"),
        type=PAYOUT_PAID,
        source=SOURCE,
        time=datetime.now(UTC),
        data={
            "payout_id": payout_id,
            "amount": int(payout.amount),
            "currency": str(payout.currency).upper(),
            "arrival_date": _when(payout.arrival_date),
            "balance_transaction_ids": settled,
            "paid_at": _when(payout.arrival_date),
        },
    )
