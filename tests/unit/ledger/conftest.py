"""Fixtures of the ledger's unit tests: an in-memory unit of work, the idempotent consumer
that applies events to it exactly as it does to the database (data loaded with its type's
schema, one savepoint per event, duplicates recognised), and the events the ledger consumes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from services.ledger.consumer import TOPICS
from services.ledger.handlers import EVENT_HANDLERS
from services.shared.consumer import IdempotentConsumer
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    DIFT_DIRECTED,
    DIFT_EXPIRED,
    DISPUTE_CLOSED,
    DISPUTE_OPENED,
    DONATION_REFUND_FAILED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    MEAL_PRICE_CHANGED,
    PAYOUT_PAID,
    PROGRAMME_CREDITED_BACK,
    PROGRAMME_FUNDED,
)
from tests.unit.ledger.fakes import FakeUnitOfWork

CAMPAIGN = "c-1"
SLUG = "petites-cantines"
FUND = f"funds:campaign:{CAMPAIGN}"
PROGRAMME = "p-1"
SPONSOR = "s-1"
PROGRAMME_FUND = f"funds:programme:{PROGRAMME}"


def consumer_of(uow: FakeUnitOfWork) -> IdempotentConsumer:
    """The ledger's idempotent consumer on `uow` (apply() never dead-letters by itself, so
    no producer is needed)."""
    return IdempotentConsumer(
        unit_of_work=lambda: uow,  # type: ignore[arg-type,return-value]
        group_id="ledger",
        topics=TOPICS,
        handlers=EVENT_HANDLERS,
        bootstrap_servers="127.0.0.1:1",
        dead_letter_producer=None,  # type: ignore[arg-type]
    )


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def ledger(uow: FakeUnitOfWork) -> IdempotentConsumer:
    return consumer_of(uow)


def apply(ledger: IdempotentConsumer, *events: CloudEvent) -> list[str]:
    """Apply events as the Kafka loop does, one message each; their outcomes."""
    return [ledger.apply(e.to_json().encode()).status for e in events]


# --- the events the ledger consumes ------------------------------------------------------------


def event(type_: str, data: dict[str, Any], **envelope: Any) -> CloudEvent:
    return new_event(type_, "difts/donations", data, **envelope)


def published(
    goal_meals: int | None = 1000,
    meal_price: int = 1350,
    campaign_id: str = CAMPAIGN,
    slug: str = SLUG,
    currency: str = "EUR",
) -> CloudEvent:
    return event(
        CAMPAIGN_PUBLISHED,
        {
            "campaign_id": campaign_id,
            "slug": slug,
            "title": "Les Petites Cantines",
            "cause": "Neighbourhood canteens",
            "currency": currency,
            "meal_price": meal_price,
            "goal_meals": goal_meals,
        },
    )


def price_changed(meal_price: int, previous: int, effective_from: str) -> CloudEvent:
    return event(
        MEAL_PRICE_CHANGED,
        {
            "campaign_id": CAMPAIGN,
            "slug": SLUG,
            "currency": "EUR",
            "meal_price": meal_price,
            "previous_meal_price": previous,
            "effective_from": effective_from,
        },
    )


def gift(
    donation_id: str,
    amount: int,
    *,
    fee: int | None = None,
    fee_covered: int = 0,
    when: str = "2026-01-15T12:00:00+00:00",
    campaign_id: str = CAMPAIGN,
    slug: str = SLUG,
    currency: str = "EUR",
    meal_price: int = 1350,
    correlation_id: str | None = None,
) -> CloudEvent:
    return event(
        DONATION_SUCCEEDED,
        {
            "donation_id": donation_id,
            "campaign_id": campaign_id,
            "campaign_slug": slug,
            "campaign_title": "Les Petites Cantines",
            "amount": amount,
            "currency": currency,
            "meal_price": meal_price,
            "fee_covered": fee_covered,
            "fee": fee,
            "net": amount - fee if fee is not None else None,
            "donor": {"email": "donor@example.org"},
            "payment_intent_id": f"pi_{donation_id}",
            "charge_id": f"ch_{donation_id}",
            "balance_transaction_id": f"txn_ch_{donation_id}",
            "succeeded_at": when,
        },
        correlation_id=correlation_id,
    )


def of_gift(type_: str, donation_id: str, amount: int, **data: Any) -> CloudEvent:
    """An event about money of a gift to the campaign (a refund, its failure, a dispute)."""
    about = {"donation_id": donation_id, "campaign_id": CAMPAIGN, "currency": "EUR"}
    return event(type_, {**about, "amount": amount, **data})


def refund(
    donation_id: str, refund_id: str, amount: int, total: int, fee_refunded: int = 0
) -> CloudEvent:
    return of_gift(
        DONATION_REFUNDED,
        donation_id,
        amount,
        campaign_slug=SLUG,
        refund_id=refund_id,
        charge_id=f"ch_{donation_id}",
        total_refunded=total,
        fully_refunded=False,
        fee_refunded=fee_refunded,
        balance_transaction_id=f"txn_{refund_id}",
        refunded_at="2026-01-20T12:00:00+00:00",
    )


def refund_failed(
    donation_id: str, refund_id: str, amount: int, total: int = 0, event_id: str | None = None
) -> CloudEvent:
    failed = of_gift(
        DONATION_REFUND_FAILED,
        donation_id,
        amount,
        campaign_slug=SLUG,
        refund_id=refund_id,
        total_refunded=total,
        balance_transaction_id=f"txn_{refund_id}_failure",
        failed_at="2026-01-25T12:00:00+00:00",
    )
    return replace(failed, id=event_id) if event_id else failed


def dispute_opened(donation_id: str, dispute_id: str, amount: int, fee: int = 1500) -> CloudEvent:
    return of_gift(
        DISPUTE_OPENED,
        donation_id,
        amount,
        dispute_id=dispute_id,
        charge_id=f"ch_{donation_id}",
        fee=fee,
        balance_transaction_id=f"txn_{dispute_id}_open",
        opened_at="2026-01-21T12:00:00+00:00",
    )


def dispute_closed(
    donation_id: str, dispute_id: str, status: str, amount: int, fee_reinstated: int = 0
) -> CloudEvent:
    won = status == "won"
    return of_gift(
        DISPUTE_CLOSED,
        donation_id,
        amount,
        dispute_id=dispute_id,
        charge_id=f"ch_{donation_id}",
        status=status,
        amount_reinstated=amount if won else 0,
        fee_reinstated=fee_reinstated,
        balance_transaction_id=f"txn_{dispute_id}_close" if won else None,
        closed_at="2026-02-10T12:00:00+00:00",
    )


def payout(payout_id: str, amount: int, settled: list[str]) -> CloudEvent:
    return event(
        PAYOUT_PAID,
        {
            "payout_id": payout_id,
            "amount": amount,
            "currency": "EUR",
            "arrival_date": "2026-01-18T00:00:00+00:00",
            "balance_transaction_ids": settled,
            "paid_at": "2026-01-17T00:00:00+00:00",
        },
    )


# --- a company's programme of difts (programmes.events) ----------------------------------------


def funded(
    funding_id: str,
    amount: int,
    *,
    method: str = "stripe",
    fee: int | None = None,
    programme_id: str = PROGRAMME,
    currency: str = "EUR",
    when: str = "2026-01-10T09:00:00+00:00",
) -> CloudEvent:
    """A programme funded through Stripe (its charge and balance transaction named after the
    funding) or by bank transfer."""
    by_stripe = method == "stripe"
    return event(
        PROGRAMME_FUNDED,
        {
            "programme_id": programme_id,
            "sponsor_id": SPONSOR,
            "sponsor_name": "Acme SAS",
            "funding_id": funding_id,
            "method": method,
            "amount": amount,
            "currency": currency,
            "fee": fee,
            "net": amount - fee if fee is not None else None,
            "total_funded": amount,
            "payment_intent_id": f"pi_{funding_id}" if by_stripe else None,
            "charge_id": f"ch_{funding_id}" if by_stripe else None,
            "balance_transaction_id": f"txn_{funding_id}" if by_stripe else None,
            "bank_reference": None if by_stripe else f"VIR-{funding_id}",
            "received_on": None if by_stripe else "2026-01-09",
            "funded_at": when,
        },
        subject=f"programmes/{programme_id}",
    )


def allocation(campaign_id: str, amount: int, meal_price: int | None = None) -> dict[str, Any]:
    """The part of a dift going to one campaign (slugs are the unit tests' campaigns')."""
    slug = SLUG if campaign_id == CAMPAIGN else f"cantine-{campaign_id}"
    part: dict[str, Any] = {"campaign_id": campaign_id, "campaign_slug": slug, "amount": amount}
    if meal_price is not None:
        part["meal_price"] = meal_price
    return part


def directed(
    dift_id: str,
    value: int,
    allocations: list[dict[str, Any]],
    *,
    programme_id: str = PROGRAMME,
    currency: str = "EUR",
    when: str = "2026-01-20T12:00:00+00:00",
) -> CloudEvent:
    return event(
        DIFT_DIRECTED,
        {
            "dift_id": dift_id,
            "programme_id": programme_id,
            "sponsor_id": SPONSOR,
            "brand_name": "Acme",
            "value": value,
            "currency": currency,
            "allocations": allocations,
            "directed_at": when,
        },
        subject=f"programmes/{programme_id}",
    )


def expired(
    dift_id: str,
    value: int,
    allocations: list[dict[str, Any]],
    *,
    rule: str = "split_evenly",
    programme_id: str = PROGRAMME,
    when: str = "2026-03-01T00:00:00+00:00",
) -> CloudEvent:
    return event(
        DIFT_EXPIRED,
        {
            "dift_id": dift_id,
            "programme_id": programme_id,
            "sponsor_id": SPONSOR,
            "value": value,
            "currency": "EUR",
            "rule": rule,
            "allocations": allocations,
            "expired_at": when,
        },
        subject=f"programmes/{programme_id}",
    )


def credited_back(
    credit_id: str, amount: int, *, programme_id: str = PROGRAMME, reason: str = "closing"
) -> CloudEvent:
    return event(
        PROGRAMME_CREDITED_BACK,
        {
            "programme_id": programme_id,
            "sponsor_id": SPONSOR,
            "credit_id": credit_id,
            "amount": amount,
            "currency": "EUR",
            "reason": reason,
            "credited_at": "2026-03-02T00:00:00+00:00",
        },
        subject=f"programmes/{programme_id}",
    )
