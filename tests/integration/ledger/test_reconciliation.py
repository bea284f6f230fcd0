"""Reconciliation against stripe-mock and PostgreSQL.

stripe-mock answers every balance-transaction list with the same fixture: one USD charge
(txn_1PgaxNB7WZ01zgkWEV3TLf40, source ch_1PgafuB7WZ01zgkWXYmPNZs8, 1.00, no fee, created
2009-02-13T23:31:30Z), and echoes any payout id it is asked for (1,100 USD, settling that
same transaction). So each test books ledger entries that reference the fixture's ids and
amounts (or deliberately do not) and reads what the report makes of both sides.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from services.ledger import handlers, views
from services.ledger.consumer import build_consumer
from services.ledger.domain import ReconciliationReport
from services.ledger.stripe_balance import BalanceTransactions
from services.ledger.unit_of_work import LedgerUnitOfWork
from services.shared.consumer import IdempotentConsumer
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import CAMPAIGN_PUBLISHED, DONATION_SUCCEEDED, PAYOUT_PAID

pytestmark = pytest.mark.integration

FIXTURE_TXN = "txn_1PgaxNB7WZ01zgkWEV3TLf40"
FIXTURE_CHARGE = "ch_1PgafuB7WZ01zgkWXYmPNZs8"
FIXTURE_CREATED = "2009-02-13T23:31:30+00:00"
FEBRUARY_2009 = (datetime(2009, 2, 1, tzinfo=UTC), datetime(2009, 3, 1, tzinfo=UTC))


@pytest.fixture
def ledger(engine: Engine) -> IdempotentConsumer:
    consumer = build_consumer(engine, "127.0.0.1:1", "ledger", dead_letter_producer=None)  # type: ignore[arg-type]
    published = new_event(
        CAMPAIGN_PUBLISHED,
        "difts/donations",
        {
            "campaign_id": "c-usd",
            "slug": "usd-cantines",
            "title": "Cantines (USD)",
            "cause": "Canteens",
            "currency": "USD",
            "meal_price": 1000,
            "goal_meals": 100,
        },
    )
    assert consumer.apply(published.to_json().encode()).status == "applied"
    return consumer


@pytest.fixture
def balance(stripe_mock_url: str) -> BalanceTransactions:
    return BalanceTransactions("sk_test_123", stripe_mock_url)


def reconcile_period(
    engine: Engine, balance: BalanceTransactions, since: datetime, until: datetime
) -> ReconciliationReport:
    asked = handlers.ReconcilePeriod(since, until)
    return handlers.reconcile_period(asked, lambda: LedgerUnitOfWork(engine), balance)


def reconcile_payout(
    engine: Engine, balance: BalanceTransactions, payout_id: str
) -> ReconciliationReport:
    asked = handlers.ReconcilePayout(payout_id)
    return handlers.reconcile_payout(asked, lambda: LedgerUnitOfWork(engine), balance)


def resync_from_stripe(
    engine: Engine,
    ledger: IdempotentConsumer,
    balance: BalanceTransactions,
    since: datetime | None = None,
    until: datetime | None = None,
    payout_id: str | None = None,
) -> dict[str, Any]:
    return handlers.resync(
        handlers.Resync(since, until, payout_id),
        lambda: LedgerUnitOfWork(engine),
        balance,
        book=lambda event: ledger.apply(event.to_json().encode()),
    )


def gift(donation_id: str, charge: str, txn: str, amount: int, fee: int) -> CloudEvent:
    return new_event(
        DONATION_SUCCEEDED,
        "difts/donations",
        {
            "donation_id": donation_id,
            "campaign_id": "c-usd",
            "campaign_slug": "usd-cantines",
            "campaign_title": "Cantines (USD)",
            "amount": amount,
            "currency": "USD",
            "meal_price": 1000,
            "fee": fee,
            "net": amount - fee,
            "donor": {"email": "donor@example.org"},
            "charge_id": charge,
            "balance_transaction_id": txn,
            "succeeded_at": FIXTURE_CREATED,
        },
    )


def book(ledger: IdempotentConsumer, *events: CloudEvent) -> None:
    for event in events:
        assert ledger.apply(event.to_json().encode()).status == "applied"


def test_a_period_whose_every_movement_matches_is_balanced(
    engine: Engine, ledger: IdempotentConsumer, balance: BalanceTransactions
) -> None:
    book(ledger, gift("d-fixture", FIXTURE_CHARGE, FIXTURE_TXN, 100, 0))

    report = reconcile_period(engine, balance, *FEBRUARY_2009)

    assert report.balanced, report.to_text()
    assert [m["balance_transaction"] for m in report.matched] == [FIXTURE_TXN]
    assert report.stripe_total == report.ledger_total == {"USD": 100}


def test_unmatched_movements_on_each_side_and_mismatched_amounts_are_reported_with_totals(
    engine: Engine, ledger: IdempotentConsumer, balance: BalanceTransactions
) -> None:
    # The ledger thinks Stripe kept a 3-cent fee on the fixture charge (Stripe says none),
    # and has a gift Stripe does not list.
    book(
        ledger,
        gift("d-fixture", FIXTURE_CHARGE, FIXTURE_TXN, 100, 3),
        gift("d-ledger-only", "ch_ledger_only", "txn_ledger_only", 2500, 103),
    )

    report = reconcile_period(engine, balance, *FEBRUARY_2009)
    print(report.to_text())

    assert not report.balanced
    [mismatch] = report.mismatched
    assert (mismatch["balance_transaction"], mismatch["net"], mismatch["ledger_net"]) == (
        FIXTURE_TXN,
        100,
        97,
    )
    assert mismatch["difference"] == 3
    [extra] = report.only_in_ledger
    assert (extra["stripe_object_id"], extra["net"]) == ("ch_ledger_only", 2397)
    assert report.only_in_stripe == []
    body = report.to_dict()
    assert body["balanced"] is False
    assert body["summary"]["only_in_ledger_total"] == 2397
    assert body["summary"]["mismatched_difference"] == 3
    assert "NOT BALANCED" in report.to_text()


def test_a_movement_the_ledger_never_saw_is_only_in_stripe_and_needs_a_person_without_metadata(
    engine: Engine, ledger: IdempotentConsumer, balance: BalanceTransactions
) -> None:
    report = reconcile_period(engine, balance, *FEBRUARY_2009)
    assert [m["source"] for m in report.only_in_stripe] == [FIXTURE_CHARGE]
    assert not report.balanced

    # stripe-mock's fixture charge carries no donation metadata: re-sync cannot say which
    # campaign it was for, so it books nothing and says why.
    outcome = resync_from_stripe(
        engine, ledger, balance, since=FEBRUARY_2009[0], until=FEBRUARY_2009[1]
    )
    assert outcome["booked"] == []
    [person] = outcome["needs_a_person"]
    assert "metadata" in person["reason"]


def test_a_payout_is_reconciled_with_what_it_settled_and_resync_books_a_missed_payout_once(
    engine: Engine, ledger: IdempotentConsumer, balance: BalanceTransactions
) -> None:
    book(ledger, gift("d-fixture", FIXTURE_CHARGE, FIXTURE_TXN, 100, 0))

    # The ledger never heard of payout po_missed: re-sync books it, once.
    first = resync_from_stripe(engine, ledger, balance, payout_id="po_missed")
    again = resync_from_stripe(engine, ledger, balance, payout_id="po_missed")
    assert first["booked"] == ["po_missed"]
    assert again["booked"] == [] and again["already_booked"] == ["po_missed"]

    report = reconcile_payout(engine, balance, "po_missed")
    with engine.connect() as conn:
        [entry] = views.journal(conn, stripe_id="po_missed")
    print(report.to_text())
    assert entry["kind"] == "payout"
    # stripe-mock says the payout paid 11.00 but settled one 1.00 charge: the report says so.
    assert [m["balance_transaction"] for m in report.matched] == [FIXTURE_TXN]
    assert report.payout == {
        "payout_id": "po_missed",
        "booked": 1100,
        "settled": 100,
        "difference": -1000,
    }
    assert not report.balanced


def test_a_payout_booked_for_what_it_settled_is_balanced(
    engine: Engine, ledger: IdempotentConsumer, balance: BalanceTransactions
) -> None:
    paid = new_event(
        PAYOUT_PAID,
        "difts/donations",
        {
            "payout_id": "po_exact",
            "amount": 100,
            "currency": "USD",
            "arrival_date": "2009-02-16T00:00:00+00:00",
            "balance_transaction_ids": [FIXTURE_TXN],
            "paid_at": "2009-02-15T00:00:00+00:00",
        },
    )
    book(ledger, gift("d-fixture", FIXTURE_CHARGE, FIXTURE_TXN, 100, 0), paid)

    report = reconcile_payout(engine, balance, "po_exact")
    with engine.connect() as conn:
        summary = views.campaign_finance_summary(conn, "usd-cantines")

    assert report.balanced, report.to_text()
    assert summary is not None and summary["paid_out"] == 100
