"""Re-sync on an in-memory unit of work, reading Stripe through the real adapter on a fake of
the stripe library's client (the integration tests use stripe-mock, whose fixture charge
carries no donation metadata): a missed gift and a missed refund are booked once, through the
idempotent consumer."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from services.ledger import handlers
from services.ledger.stripe_balance import BalanceTransactions
from services.shared.consumer import IdempotentConsumer
from services.shared.envelope import CloudEvent
from tests.unit.ledger.conftest import apply, funded, published
from tests.unit.ledger.fakes import FakeUnitOfWork, journal
from tests.unit.ledger.fakes import finance_summary as campaign_finance_summary

CREATED = 1_768_478_400  # 2026-01-15T12:00:00Z


class Metadata(dict[str, str]):
    def to_dict(self) -> dict[str, str]:
        return dict(self)


class FakeList:
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def auto_paging_iter(self) -> Iterator[Any]:
        return iter(self.items)


def balance_transaction(
    txn: str, type_: str, source: str, amount: int, fee: int, created: int = CREATED
) -> SimpleNamespace:
    """A balance transaction as the stripe library hands it over (currency in lower case)."""
    return SimpleNamespace(
        id=txn,
        type=type_,
        source=source,
        currency="eur",
        amount=amount,
        fee=fee,
        net=amount - fee,
        created=created,
    )


class FakeStripe:
    """The few calls re-sync makes, answering from fixed objects."""

    def __init__(self) -> None:
        self.transactions = [
            balance_transaction("txn_gift", "charge", "ch_missed", 2700, 64),
            balance_transaction("txn_refund", "refund", "re_missed", -700, 0, CREATED + 3600),
            balance_transaction("txn_stranger", "charge", "ch_stranger", 500, 20),
        ]
        charges = {
            "ch_missed": SimpleNamespace(
                metadata=Metadata(donation_id="d-missed", campaign_id="c-1"),
                amount=2700,
                currency="eur",
                receipt_email="donor@example.org",
                billing_details=None,
                payment_intent="pi_missed",
                created=CREATED,
            ),
            "ch_stranger": SimpleNamespace(
                metadata=Metadata(),
                amount=500,
                currency="eur",
                receipt_email=None,
                billing_details=None,
                payment_intent=None,
                created=CREATED,
            ),
        }
        by_id = {t.id: t for t in self.transactions}
        self.v1 = SimpleNamespace(
            balance_transactions=SimpleNamespace(
                list=lambda params: FakeList(self.transactions),
                retrieve=lambda txn: by_id[txn],
            ),
            charges=SimpleNamespace(retrieve=lambda charge: charges[charge]),
            refunds=SimpleNamespace(
                retrieve=lambda refund: SimpleNamespace(amount=700, charge="ch_missed")
            ),
        )


@pytest.fixture
def ledger(ledger: IdempotentConsumer) -> IdempotentConsumer:
    assert apply(ledger, published()) == ["applied"]
    return ledger


def resync_from_stripe(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer, balance: BalanceTransactions
) -> dict[str, Any]:
    def book(event: CloudEvent) -> Any:
        return ledger.apply(event.to_json().encode())

    return handlers.resync(handlers.Resync(), lambda: uow, balance, book)


def test_resync_books_a_missed_gift_and_its_refund_once_and_lists_what_it_cannot(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    balance = BalanceTransactions("sk_test_123", "http://127.0.0.1:1")
    balance.client = FakeStripe()  # type: ignore[assignment]

    first = resync_from_stripe(uow, ledger, balance)
    again = resync_from_stripe(uow, ledger, balance)

    assert first["booked"] == ["txn_gift", "txn_refund"]
    assert [p["balance_transaction"] for p in first["needs_a_person"]] == ["txn_stranger"]
    assert again["booked"] == [] and again["missing_from_ledger"] == 1
    summary = campaign_finance_summary(uow, "petites-cantines")
    [gift] = journal(uow, stripe_id="txn_gift")
    assert summary is not None
    assert (summary["donated"], summary["fees"], summary["refunded"]) == (2700, 64, 700)
    assert summary["meals_funded"] == 1  # 27.00 - 7.00 = 20.00 at 13.50
    assert gift["balance_transaction_id"] == "txn_gift"


def test_resync_never_invents_a_gift_from_a_programmes_payment_and_matches_one_booked(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    stripe = FakeStripe()
    stripe.transactions[:] = [
        balance_transaction("txn_f-1", "charge", "ch_f-1", 10_000, 145),
        balance_transaction("txn_f-2", "charge", "ch_f-2", 5_000, 80),
    ]
    programme_charge = SimpleNamespace(
        metadata=Metadata(programme_id="p-1", donation_id="d-x", campaign_id="c-1"),
        amount=5_000,
        currency="eur",
        receipt_email=None,
        billing_details=None,
        payment_intent="pi_f-2",
        created=CREATED,
    )
    stripe.v1.charges = SimpleNamespace(retrieve=lambda charge: programme_charge)
    balance = BalanceTransactions("sk_test_123", "http://127.0.0.1:1")
    balance.client = stripe  # type: ignore[assignment]
    assert apply(ledger, funded("f-1", 10_000, fee=145)) == ["applied"]

    found = resync_from_stripe(uow, ledger, balance)

    # The funding booked matches its balance transaction; the one missed needs a person.
    assert found["missing_from_ledger"] == 1
    assert found["booked"] == []
    [person] = found["needs_a_person"]
    assert person["balance_transaction"] == "txn_f-2" and "programme p-1" in person["reason"]
    assert uow.gifts.rows == {}
