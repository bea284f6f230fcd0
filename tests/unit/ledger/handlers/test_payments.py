"""The handlers of Stripe's money movements on an in-memory unit of work: every movement of a
gift gets its balanced entry on the accounts of the chart, once, and the meals follow the
eligible money (gifts and fees, refunds, refunds that fail, disputes, payouts)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from services.ledger import handlers
from services.shared.consumer import IdempotentConsumer
from services.shared.events import DONATION_BOOKED, MEALS_FUNDED
from tests.unit.ledger.conftest import (
    CAMPAIGN,
    FUND,
    SLUG,
    apply,
    dispute_closed,
    dispute_opened,
    gift,
    payout,
    published,
    refund,
    refund_failed,
)
from tests.unit.ledger.fakes import (
    FakeUnitOfWork,
    balances,
    journal,
    outbox,
    trial_totals,
    unbalanced_entries,
)
from tests.unit.ledger.fakes import finance_summary as summary


def figures(uow: FakeUnitOfWork, *names: str) -> tuple[Any, ...]:
    """Some figures of the campaign's finance summary."""
    found = summary(uow)
    return tuple(found[name] for name in names)


def set_fee_policy(uow: FakeUnitOfWork, policy: str) -> None:
    with uow:
        handlers.set_fee_policy(handlers.SetFeePolicy(SLUG, policy), uow)


def assert_books_balance(uow: FakeUnitOfWork) -> None:
    assert unbalanced_entries(uow) == []
    assert all(total == 0 for total in trial_totals(uow).values())


# --- donations and fees ------------------------------------------------------------------------


def test_a_gift_books_net_to_clearing_the_fee_as_expense_and_the_gross_to_the_fund(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, fee=64))

    assert balances(uow) == {
        "assets:stripe-clearing": 2636,
        "expenses:processing-fees": 64,
        FUND: -2700,
    }
    assert figures(uow, "donated", "fees", "net", "meals_funded") == (2700, 64, 2636, 2)
    [entry] = journal(uow, campaign=CAMPAIGN)
    assert (entry["kind"], entry["stripe_object_id"], entry["balance_transaction_id"]) == (
        "donation",
        "ch_d-1",
        "txn_ch_d-1",
    )
    assert entry["effective_at"].isoformat() == "2026-01-15T12:00:00+00:00"
    assert_books_balance(uow)


def test_a_donor_covered_fee_is_fee_income_and_the_cause_gets_the_gift_whole(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    # The donor gives 27.00 and adds 0.80 for the fee; Stripe keeps 0.66.
    apply(ledger, published(), gift("d-1", 2780, fee=66, fee_covered=80))

    assert balances(uow) == {
        "assets:stripe-clearing": 2714,
        "expenses:processing-fees": 66,
        "income:donor-covered-fees": -80,
        FUND: -2700,
    }
    assert summary(uow)["meals_funded"] == 2
    assert summary(uow)["fee_covered"] == 80


def test_under_the_campaign_fee_policy_the_uncovered_fee_reduces_the_fund_and_the_meals(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published())
    set_fee_policy(uow, "campaign")

    apply(ledger, gift("d-1", 2700, fee=64))

    assert balances(uow) == {
        "assets:stripe-clearing": 2636,
        "expenses:processing-fees": 64,
        "income:fees-charged-to-campaigns": -64,
        FUND: -2636,
    }
    assert figures(uow, "meals_funded", "remainder", "fund_balance") == (1, 1286, 2636)
    kinds = [e["kind"] for e in journal(uow, campaign=CAMPAIGN)]
    assert kinds == ["donation", "fee_charged_to_fund"]


def test_every_gift_announces_what_it_did_once(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 1000), gift("d-2", 2700), gift("d-2", 2700))

    booked = [(e["data"]["donation_id"], e["data"]["meals"]) for e in outbox(uow, DONATION_BOOKED)]
    assert booked == [("d-1", 0), ("d-2", 2)]
    assert outbox(uow, DONATION_BOOKED)[1]["data"]["remainder"] == 1000


# --- refunds -------------------------------------------------------------------------------------


def test_partial_refunds_are_booked_once_per_refund_id_and_reduce_the_meals(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 4050, fee=80))
    assert summary(uow)["meals_funded"] == 3

    first = refund("d-1", "re_1", 1350, 1350)
    again = refund("d-1", "re_1", 1350, 1350)  # the same refund under another event id
    assert apply(ledger, first, first, again) == ["applied", "duplicate", "applied"]
    assert figures(uow, "refunded", "meals_funded", "remainder") == (1350, 2, 0)

    apply(ledger, refund("d-1", "re_2", 2700, 4050, fee_refunded=80))
    assert balances(uow) == {}  # everything went back, Stripe returned its fee too
    assert figures(uow, "refunded", "meals_funded", "fund_balance") == (4050, 0, 0)
    assert [m["data"]["meals_funded"] for m in outbox(uow, MEALS_FUNDED)] == [3, 2, 0]
    assert_books_balance(uow)


def test_a_refund_splits_between_the_fund_and_the_donor_covered_fee_without_losing_a_cent(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 1003, fee=40, fee_covered=3))
    apply(ledger, refund("d-1", "re_1", 333, 333), refund("d-1", "re_2", 333, 666))
    apply(ledger, refund("d-1", "re_3", 337, 1003))

    left = balances(uow)
    assert left == {"assets:stripe-clearing": -40, "expenses:processing-fees": 40}
    assert_books_balance(uow)


def test_a_refund_of_more_than_the_gift_is_dead_lettered_and_changes_nothing(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700))

    outcome = ledger.apply(refund("d-1", "re_1", 2701, 2701).to_json().encode())

    assert outcome.status == "dead_lettered"
    assert summary(uow)["refunded"] == 0


def test_a_refund_of_a_gift_the_ledger_never_booked_is_dead_lettered(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published())
    outcome = ledger.apply(refund("d-x", "re_1", 100, 100).to_json().encode())
    assert outcome.status == "dead_lettered"
    assert "never booked" in (outcome.reason or "")


# --- refunds that fail ------------------------------------------------------------------------


def gift_state(uow: FakeUnitOfWork, donation_id: str) -> tuple[int, int, int]:
    found = uow.gifts.get(donation_id)
    assert found is not None
    return found.returned.amount, found.fund_balance.amount, found.fee_back_to_fund.amount


def books(uow: FakeUnitOfWork) -> dict[str, Any]:
    found = summary(uow)
    keys = ("refunded", "meals_funded", "remainder", "fund_balance", "net", "fees")
    return {"balances": balances(uow), **{key: found[key] for key in keys}}


@pytest.mark.parametrize(
    ("policy", "covered"),
    [("platform", 80), ("platform", 0), ("campaign", 0), ("campaign", 30)],
)
def test_a_refund_that_fails_is_reversed_and_the_books_are_as_before_it(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer, policy: str, covered: int
) -> None:
    apply(ledger, published())
    set_fee_policy(uow, policy)
    amount = 4050 + covered
    apply(ledger, gift("d-1", amount, fee=80, fee_covered=covered))
    before, gift_before = books(uow), gift_state(uow, "d-1")
    half = amount // 2

    assert apply(ledger, refund("d-1", "re_1", half, half, fee_refunded=40)) == ["applied"]
    after_refund = summary(uow)["meals_funded"]
    assert after_refund < before["meals_funded"]
    assert books(uow) != before

    assert apply(ledger, refund_failed("d-1", "re_1", 2065)) == ["applied"]

    assert books(uow) == before  # fund, clearing, fees, refunded total and meals
    assert gift_state(uow, "d-1") == gift_before
    entries = journal(uow, campaign=CAMPAIGN)
    by_kind = {e["kind"]: e for e in entries}
    lines = {
        kind: sorted(
            (line.account, line.amount.amount) for line in uow.journal.lines_of(by_kind[kind]["id"])
        )
        for kind in ("refund", "refund_failed")
    }
    assert lines["refund_failed"] == sorted((a, -amount) for a, amount in lines["refund"])
    assert (
        by_kind["refund_failed"]["stripe_object_id"],
        by_kind["refund_failed"]["balance_transaction_id"],
    ) == (
        "re_1",
        "txn_re_1_failure",
    )
    meals = [m["data"]["meals_funded"] for m in outbox(uow, MEALS_FUNDED)]
    assert meals == [before["meals_funded"], after_refund, before["meals_funded"]]
    assert_books_balance(uow)

    # The money the failed refund left in the fund can still be refunded for real.
    apply(ledger, refund("d-1", "re_2", amount, amount, fee_refunded=80))
    assert summary(uow)["refunded"] == amount
    assert gift_state(uow, "d-1")[0] == amount
    assert summary(uow)["fund_balance"] == 0
    assert_books_balance(uow)


def test_a_refund_failure_is_booked_once_whatever_announces_it_again(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700), refund("d-1", "re_1", 1350, 1350))
    failed = refund_failed("d-1", "re_1", 1350)
    again = refund_failed("d-1", "re_1", 1350)  # the same failure under another event id

    assert apply(ledger, failed, failed, again) == ["applied", "duplicate", "applied"]

    kinds = [e["kind"] for e in journal(uow, campaign=CAMPAIGN)]
    assert sorted(kinds) == ["donation", "refund", "refund_failed"]
    assert figures(uow, "refunded", "meals_funded", "fund_balance") == (0, 2, 2700)
    assert_books_balance(uow)


def test_the_failure_of_a_refund_never_booked_changes_nothing(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700))
    before, gift_before = books(uow), gift_state(uow, "d-1")
    meals_events = len(outbox(uow, MEALS_FUNDED))

    assert apply(ledger, refund_failed("d-1", "re_never", 1350)) == ["applied"]

    assert books(uow) == before
    assert gift_state(uow, "d-1") == gift_before
    assert len(outbox(uow, MEALS_FUNDED)) == meals_events
    assert [e["kind"] for e in journal(uow, campaign=CAMPAIGN)] == ["donation"]


# --- disputes ------------------------------------------------------------------------------------


def test_a_won_dispute_withdraws_then_reinstates_and_keeps_the_meals(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, fee=64), dispute_opened("d-1", "dp_1", 2700))
    assert balances(uow) == {
        "assets:stripe-clearing": 2636 - 2700 - 1500,
        "assets:disputed-funds": 2700,
        "expenses:dispute-fees": 1500,
        "expenses:processing-fees": 64,
        FUND: -2700,
    }
    assert summary(uow)["meals_funded"] == 2
    assert summary(uow)["disputed"] == 2700

    apply(ledger, dispute_closed("d-1", "dp_1", "won", 2700, fee_reinstated=1500))

    assert balances(uow) == {
        "assets:stripe-clearing": 2636,
        "expenses:processing-fees": 64,
        FUND: -2700,
    }
    assert summary(uow)["meals_funded"] == 2


def test_a_lost_dispute_takes_the_gift_from_the_fund_and_the_meals_and_the_fee_stays_lost(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, fee=64), gift("d-2", 1350, fee=40))
    apply(ledger, dispute_opened("d-1", "dp_1", 2700))
    closed = dispute_closed("d-1", "dp_1", "lost", 2700)
    apply(ledger, closed, dispute_closed("d-1", "dp_1", "lost", 2700))

    assert balances(uow) == {
        "assets:stripe-clearing": 2636 + 1310 - 2700 - 1500,
        "expenses:dispute-fees": 1500,
        "expenses:processing-fees": 104,
        FUND: -1350,
    }
    assert figures(uow, "meals_funded", "dispute_lost", "disputed") == (1, 2700, 0)
    assert_books_balance(uow)


# --- payouts ------------------------------------------------------------------------------------


def test_a_payout_moves_clearing_to_the_bank_and_counts_as_paid_out_for_the_campaign(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, fee=64), gift("d-2", 1350, fee=40))
    paid = payout("po_1", 2636, ["txn_ch_d-1"])
    apply(ledger, paid, paid)

    assert balances(uow)["assets:bank"] == 2636
    assert balances(uow)["assets:stripe-clearing"] == 1310
    assert summary(uow)["paid_out"] == 2636
    [entry] = journal(uow, stripe_id="po_1")
    assert entry["kind"] == "payout"


# --- what the booking tells the receipt ---------------------------------------------------------


def test_a_gift_from_the_donations_service_is_booked_with_its_receipt_facts(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    given = gift("d-1", 2700, when="2026-01-15T13:00:00+01:00")
    apply(ledger, published(), given)

    [booked] = outbox(uow, DONATION_BOOKED)
    assert booked["id"] == str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"difts/ledger/{DONATION_BOOKED}/d-1")
    )
    assert booked["subject"] == "donations/d-1"
    assert booked["data"] == {
        "donation_id": "d-1",
        "campaign_id": CAMPAIGN,
        "campaign_slug": SLUG,
        "amount": 2700,
        "currency": "EUR",
        "meal_price": 1350,
        "meals": 2,
        "meals_funded": 2,
        "remainder": 0,
        "receipt": {
            # The donor as the schema loads it (its defaults filled in), the moment in UTC.
            "donor": {"email": "donor@example.org", "name": "", "locale": "en"},
            "campaign_title": "Les Petites Cantines",
            "campaign_cause": "",
            "succeeded_at": "2026-01-15T12:00:00+00:00",
        },
    }


def test_a_gift_re_synced_from_stripe_is_booked_without_receipt_facts(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    rebuilt = replace(gift("d-1", 2700), source="difts/ledger/resync")
    apply(ledger, published(), rebuilt)

    [booked] = outbox(uow, DONATION_BOOKED)
    assert booked["data"]["receipt"] is None
    assert booked["data"]["meals"] == 2
