"""Finance staff's commands on an in-memory unit of work: closing a month moves late entries
into the next open one, a fee policy is one of two, and reconciliation matches Stripe's
balance transactions to the journal's entries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.ledger import handlers
from services.ledger.domain import BalanceQuery, StripeMovement, reconcile
from services.shared.consumer import IdempotentConsumer
from tests.unit.ledger.conftest import (
    SLUG,
    apply,
    gift,
    payout,
    published,
    refund,
    refund_failed,
)
from tests.unit.ledger.fakes import FakeStripe, FakeUnitOfWork, journal
from tests.unit.ledger.fakes import finance_summary as summary

JANUARY = datetime(2026, 1, 25, tzinfo=UTC)


def close(uow: FakeUnitOfWork, month: str, by: str) -> bool:
    with uow:
        return handlers.close_period(handlers.ClosePeriod(month, by), uow)


# --- periods -------------------------------------------------------------------------------------


def test_a_late_event_for_a_closed_month_posts_into_the_next_open_month_with_its_date(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, when="2026-01-15T12:00:00+00:00"))
    assert close(uow, "2026-01", "finance@example.org")
    assert not close(uow, "2026-01", "finance@example.org")

    apply(ledger, gift("d-2", 1350, when="2026-01-31T23:00:00+00:00"))

    january = journal(uow, until=datetime(2026, 2, 1, tzinfo=UTC))
    [late] = journal(uow, stripe_id="ch_d-2")
    assert [e["donation_id"] for e in january] == ["d-1"]
    assert late["effective_at"].isoformat() == "2026-02-01T00:00:00+00:00"
    assert late["original_effective_at"].isoformat() == "2026-01-31T23:00:00+00:00"
    assert summary(uow)["meals_funded"] == 3  # the money counts; only the posting date moves


@pytest.mark.parametrize("month", ["January", "2026-1", "2026-13", "2026-01-01"])
def test_a_period_is_a_month(uow: FakeUnitOfWork, month: str) -> None:
    with pytest.raises(handlers.Refused):
        close(uow, month, "me")
    assert uow.journal.closed_months() == set()


# --- fee policies ----------------------------------------------------------------------------


def test_a_fee_policy_is_platform_or_campaign_for_a_campaign_the_ledger_knows(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published())

    with uow:
        handlers.set_fee_policy(handlers.SetFeePolicy(SLUG, "campaign"), uow)
    for refused in (handlers.SetFeePolicy(SLUG, "donor"), handlers.SetFeePolicy("nobody", "x")):
        with pytest.raises(handlers.Refused), uow:
            handlers.set_fee_policy(refused, uow)
    with pytest.raises(handlers.Refused, match="no campaign 'nobody'"), uow:
        handlers.set_fee_policy(handlers.SetFeePolicy("nobody", "platform"), uow)

    assert summary(uow)["fee_policy"] == "campaign"


# --- reconciliation ----------------------------------------------------------------------------


def test_reconciliation_matches_stripe_refund_failure_to_the_reversal(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, fee=64), refund("d-1", "re_1", 1350, 1350))
    apply(ledger, refund_failed("d-1", "re_1", 1350))
    when = JANUARY
    stripe_side = [
        StripeMovement("txn_ch_d-1", "charge", "ch_d-1", "EUR", 2700, 64, 2636, when),
        StripeMovement("txn_re_1", "refund", "re_1", "EUR", -1350, 0, -1350, when),
        StripeMovement("txn_re_1_failure", "refund_failure", "re_1", "EUR", 1350, 0, 1350, when),
    ]
    report = reconcile("test", stripe_side, uow.journal.clearing_movements())
    assert [(row["type"], row["kind"]) for row in report.matched] == [
        ("charge", "donation"),
        ("refund", "refund"),
        ("refund_failure", "refund_failed"),
    ]
    assert report.mismatched == report.only_in_stripe == report.only_in_ledger == []


def test_a_period_is_reconciled_with_the_entries_dated_in_it(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(
        ledger,
        published(),
        gift("d-1", 2700, fee=64),
        gift("d-2", 1350, when="2026-02-02T10:00:00+00:00"),
    )
    stripe_side = [
        StripeMovement("txn_ch_d-1", "charge", "ch_d-1", "EUR", 2700, 64, 2636, JANUARY),
        StripeMovement("txn_other", "charge", "ch_other", "EUR", 500, 20, 480, JANUARY),
    ]
    asked = handlers.ReconcilePeriod(
        datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    )

    stripe = FakeStripe(stripe_side)

    report = handlers.reconcile_period(asked, lambda: uow, stripe)

    assert stripe.asked == [BalanceQuery(since=asked.since, until=asked.until)]
    assert report.scope == "2026-01-01T00:00:00+00:00 to 2026-02-01T00:00:00+00:00"
    assert [row["balance_transaction"] for row in report.matched] == ["txn_ch_d-1"]
    assert [row["source"] for row in report.only_in_stripe] == ["ch_other"]
    assert report.only_in_ledger == []  # the February gift is another period's
    assert (report.stripe_total, report.ledger_total) == ({"EUR": 3116}, {"EUR": 2636})
    assert not report.balanced


def test_a_payout_is_reconciled_with_what_it_settled_and_what_went_to_the_bank(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, fee=64), gift("d-2", 1350, fee=40))
    apply(ledger, payout("po_1", 2636, ["txn_ch_d-1"]))
    stripe_side = [
        StripeMovement("txn_ch_d-1", "charge", "ch_d-1", "EUR", 2700, 64, 2636, JANUARY),
        StripeMovement("txn_po_1", "payout", "po_1", "EUR", -2636, 0, -2636, JANUARY),
    ]

    stripe = FakeStripe(stripe_side)

    report = handlers.reconcile_payout(handlers.ReconcilePayout("po_1"), lambda: uow, stripe)

    assert stripe.asked == [BalanceQuery(payout_id="po_1")]
    assert report.scope == "payout po_1"
    assert [row["balance_transaction"] for row in report.matched] == ["txn_ch_d-1"]
    assert report.payout == {"payout_id": "po_1", "booked": 2636, "settled": 2636, "difference": 0}
    assert report.balanced
