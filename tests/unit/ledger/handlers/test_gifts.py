"""The books on the embedded SQLite database: every Stripe money movement of a gift gets its
balanced entry on the accounts of the chart, once, and the meals follow the eligible money."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from services.ledger import handlers, store, views
from services.ledger.__main__ import MIGRATIONS
from services.ledger.consumer import build_consumer
from services.ledger.reconciliation import StripeMovement, ledger_movements, reconcile
from services.shared.consumer import IdempotentConsumer
from services.shared.db import make_engine, upgrade
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    DISPUTE_CLOSED,
    DISPUTE_OPENED,
    DONATION_BOOKED,
    DONATION_REFUND_FAILED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    MEAL_PRICE_CHANGED,
    MEALS_FUNDED,
    MILESTONE_REACHED,
    PAYOUT_PAID,
)

CAMPAIGN = "c-1"
FUND = f"funds:campaign:{CAMPAIGN}"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url, MIGRATIONS)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(engine: Engine) -> IdempotentConsumer:
    return build_consumer(engine, "127.0.0.1:1", "ledger", dead_letter_producer=None)  # type: ignore[arg-type]


def event(type_: str, data: dict[str, Any]) -> CloudEvent:
    return new_event(type_, "difts/donations", data)


def published(goal_meals: int | None = 1000, meal_price: int = 1350) -> CloudEvent:
    return event(
        CAMPAIGN_PUBLISHED,
        {
            "campaign_id": CAMPAIGN,
            "slug": "petites-cantines",
            "title": "Les Petites Cantines",
            "cause": "Neighbourhood canteens",
            "currency": "EUR",
            "meal_price": meal_price,
            "goal_meals": goal_meals,
        },
    )


def gift(
    donation_id: str,
    amount: int,
    *,
    fee: int | None = None,
    fee_covered: int = 0,
    when: str = "2026-01-15T12:00:00+00:00",
) -> CloudEvent:
    return event(
        DONATION_SUCCEEDED,
        {
            "donation_id": donation_id,
            "campaign_id": CAMPAIGN,
            "campaign_slug": "petites-cantines",
            "campaign_title": "Les Petites Cantines",
            "amount": amount,
            "currency": "EUR",
            "meal_price": 1350,
            "fee_covered": fee_covered,
            "fee": fee,
            "net": amount - fee if fee is not None else None,
            "donor": {"email": "donor@example.org"},
            "payment_intent_id": f"pi_{donation_id}",
            "charge_id": f"ch_{donation_id}",
            "balance_transaction_id": f"txn_ch_{donation_id}",
            "succeeded_at": when,
        },
    )


def refund(
    donation_id: str, refund_id: str, amount: int, total: int, fee_refunded: int = 0
) -> CloudEvent:
    return event(
        DONATION_REFUNDED,
        {
            "donation_id": donation_id,
            "campaign_id": CAMPAIGN,
            "campaign_slug": "petites-cantines",
            "refund_id": refund_id,
            "charge_id": f"ch_{donation_id}",
            "amount": amount,
            "currency": "EUR",
            "total_refunded": total,
            "fully_refunded": False,
            "fee_refunded": fee_refunded,
            "balance_transaction_id": f"txn_{refund_id}",
            "refunded_at": "2026-01-20T12:00:00+00:00",
        },
    )


def dispute_opened(donation_id: str, dispute_id: str, amount: int, fee: int = 1500) -> CloudEvent:
    return event(
        DISPUTE_OPENED,
        {
            "donation_id": donation_id,
            "campaign_id": CAMPAIGN,
            "dispute_id": dispute_id,
            "charge_id": f"ch_{donation_id}",
            "amount": amount,
            "currency": "EUR",
            "fee": fee,
            "balance_transaction_id": f"txn_{dispute_id}_open",
            "opened_at": "2026-01-21T12:00:00+00:00",
        },
    )


def dispute_closed(
    donation_id: str, dispute_id: str, status: str, amount: int, fee_reinstated: int = 0
) -> CloudEvent:
    return event(
        DISPUTE_CLOSED,
        {
            "donation_id": donation_id,
            "campaign_id": CAMPAIGN,
            "dispute_id": dispute_id,
            "charge_id": f"ch_{donation_id}",
            "status": status,
            "amount": amount,
            "currency": "EUR",
            "amount_reinstated": amount if status == "won" else 0,
            "fee_reinstated": fee_reinstated,
            "balance_transaction_id": f"txn_{dispute_id}_close" if status == "won" else None,
            "closed_at": "2026-02-10T12:00:00+00:00",
        },
    )


def apply(ledger: IdempotentConsumer, *events: CloudEvent) -> list[str]:
    return [ledger.apply(e.to_json().encode()).status for e in events]


def balances(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        found = views.trial_balance(conn)
    return {row["account"]: row["balance"] for row in found["accounts"] if row["balance"]}


def summary(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        found = views.campaign_finance_summary(conn, "petites-cantines")
    assert found is not None
    return found


def outbox(engine: Engine, event_type: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        payloads = conn.execute(
            select(store.outbox.c.payload)
            .where(store.outbox.c.event_type == event_type)
            .order_by(store.outbox.c.seq)
        ).scalars()
        return [json.loads(payload) for payload in payloads]


def assert_books_balance(engine: Engine) -> None:
    with engine.connect() as conn:
        assert views.unbalanced_entries(conn) == []
        assert views.trial_balance(conn)["balanced"]


# --- donations and fees ------------------------------------------------------------------------


def test_a_gift_books_net_to_clearing_the_fee_as_expense_and_the_gross_to_the_fund(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, fee=64))

    assert balances(engine) == {
        "assets:stripe-clearing": 2636,
        "expenses:processing-fees": 64,
        FUND: -2700,
    }
    found = summary(engine)
    assert (found["donated"], found["fees"], found["net"], found["meals_funded"]) == (
        2700,
        64,
        2636,
        2,
    )
    with engine.connect() as conn:
        [entry] = views.journal(conn, campaign=CAMPAIGN)
    assert (entry["kind"], entry["stripe_object_id"], entry["balance_transaction_id"]) == (
        "donation",
        "ch_d-1",
        "txn_ch_d-1",
    )
    assert entry["effective_at"].isoformat() == "2026-01-15T12:00:00+00:00"
    assert_books_balance(engine)


def test_a_donor_covered_fee_is_fee_income_and_the_cause_gets_the_gift_whole(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    # The donor gives 27.00 and adds 0.80 for the fee; Stripe keeps 0.66.
    apply(ledger, published(), gift("d-1", 2780, fee=66, fee_covered=80))

    assert balances(engine) == {
        "assets:stripe-clearing": 2714,
        "expenses:processing-fees": 66,
        "income:donor-covered-fees": -80,
        FUND: -2700,
    }
    assert summary(engine)["meals_funded"] == 2
    assert summary(engine)["fee_covered"] == 80


def test_under_the_campaign_fee_policy_the_uncovered_fee_reduces_the_fund_and_the_meals(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published())
    with engine.begin() as conn:
        handlers.set_fee_policy(conn, "petites-cantines", "campaign")

    apply(ledger, gift("d-1", 2700, fee=64))

    assert balances(engine) == {
        "assets:stripe-clearing": 2636,
        "expenses:processing-fees": 64,
        "income:fees-charged-to-campaigns": -64,
        FUND: -2636,
    }
    found = summary(engine)
    assert (found["meals_funded"], found["remainder"], found["fund_balance"]) == (1, 1286, 2636)
    kinds = [e["kind"] for e in views.journal(engine.connect(), campaign=CAMPAIGN)]
    assert kinds == ["donation", "fee_charged_to_fund"]


def test_every_gift_announces_what_it_did_once(engine: Engine, ledger: IdempotentConsumer) -> None:
    apply(ledger, published(), gift("d-1", 1000), gift("d-2", 2700), gift("d-2", 2700))

    booked = [
        (e["data"]["donation_id"], e["data"]["meals"]) for e in outbox(engine, DONATION_BOOKED)
    ]
    assert booked == [("d-1", 0), ("d-2", 2)]
    assert outbox(engine, DONATION_BOOKED)[1]["data"]["remainder"] == 1000


# --- refunds -------------------------------------------------------------------------------------


def test_partial_refunds_are_booked_once_per_refund_id_and_reduce_the_meals(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 4050, fee=80))
    assert summary(engine)["meals_funded"] == 3

    first = refund("d-1", "re_1", 1350, 1350)
    again = refund("d-1", "re_1", 1350, 1350)  # the same refund under another event id
    assert apply(ledger, first, first, again) == ["applied", "duplicate", "applied"]
    found = summary(engine)
    assert (found["refunded"], found["meals_funded"], found["remainder"]) == (1350, 2, 0)

    apply(ledger, refund("d-1", "re_2", 2700, 4050, fee_refunded=80))
    assert balances(engine) == {}  # everything went back, Stripe returned its fee too
    found = summary(engine)
    assert (found["refunded"], found["meals_funded"], found["fund_balance"]) == (4050, 0, 0)
    assert [m["data"]["meals_funded"] for m in outbox(engine, MEALS_FUNDED)] == [3, 2, 0]
    assert_books_balance(engine)


def test_a_refund_splits_between_the_fund_and_the_donor_covered_fee_without_losing_a_cent(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 1003, fee=40, fee_covered=3))
    apply(ledger, refund("d-1", "re_1", 333, 333), refund("d-1", "re_2", 333, 666))
    apply(ledger, refund("d-1", "re_3", 337, 1003))

    left = balances(engine)
    assert left == {"assets:stripe-clearing": -40, "expenses:processing-fees": 40}
    assert_books_balance(engine)


def test_a_refund_of_more_than_the_gift_is_dead_lettered_and_changes_nothing(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700))

    outcome = ledger.apply(refund("d-1", "re_1", 2701, 2701).to_json().encode())

    assert outcome.status == "dead_lettered"
    assert summary(engine)["refunded"] == 0


def test_a_refund_of_a_gift_the_ledger_never_booked_is_dead_lettered(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published())
    outcome = ledger.apply(refund("d-x", "re_1", 100, 100).to_json().encode())
    assert outcome.status == "dead_lettered"
    assert "never booked" in (outcome.reason or "")


# --- refunds that fail ------------------------------------------------------------------------


def refund_failed(
    donation_id: str, refund_id: str, amount: int, total: int = 0, event_id: str | None = None
) -> CloudEvent:
    data = {
        "donation_id": donation_id,
        "campaign_id": CAMPAIGN,
        "campaign_slug": "petites-cantines",
        "refund_id": refund_id,
        "amount": amount,
        "currency": "EUR",
        "total_refunded": total,
        "balance_transaction_id": f"txn_{refund_id}_failure",
        "failed_at": "2026-01-25T12:00:00+00:00",
    }
    failed = event(DONATION_REFUND_FAILED, data)
    return replace(failed, id=event_id) if event_id else failed


def gift_state(engine: Engine, donation_id: str) -> tuple[int, int, int]:
    with engine.connect() as conn:
        row = store.gift_of(conn, donation_id)
    assert row is not None
    return row.returned, row.fund_balance, row.fee_back_to_fund


def books(engine: Engine) -> dict[str, Any]:
    found = summary(engine)
    keys = ("refunded", "meals_funded", "remainder", "fund_balance", "net", "fees")
    return {"balances": balances(engine), **{key: found[key] for key in keys}}


@pytest.mark.parametrize(
    ("policy", "covered"),
    [("platform", 80), ("platform", 0), ("campaign", 0), ("campaign", 30)],
)
def test_a_refund_that_fails_is_reversed_and_the_books_are_as_before_it(
    engine: Engine, ledger: IdempotentConsumer, policy: str, covered: int
) -> None:
    apply(ledger, published())
    with engine.begin() as conn:
        handlers.set_fee_policy(conn, "petites-cantines", policy)
    amount = 4050 + covered
    apply(ledger, gift("d-1", amount, fee=80, fee_covered=covered))
    before, gift_before = books(engine), gift_state(engine, "d-1")
    half = amount // 2

    assert apply(ledger, refund("d-1", "re_1", half, half, fee_refunded=40)) == ["applied"]
    after_refund = summary(engine)["meals_funded"]
    assert after_refund < before["meals_funded"]
    assert books(engine) != before

    assert apply(ledger, refund_failed("d-1", "re_1", 2065)) == ["applied"]

    assert books(engine) == before  # fund, clearing, fees, refunded total and meals
    assert gift_state(engine, "d-1") == gift_before
    with engine.connect() as conn:
        entries = views.journal(conn, campaign=CAMPAIGN)
        by_kind = {e["kind"]: e for e in entries}
        lines = {
            kind: sorted(
                (line.account, line.amount.amount)
                for line in store.entry_lines(conn, by_kind[kind]["id"])
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
    meals = [m["data"]["meals_funded"] for m in outbox(engine, MEALS_FUNDED)]
    assert meals == [before["meals_funded"], after_refund, before["meals_funded"]]
    assert_books_balance(engine)

    # The money the failed refund left in the fund can still be refunded for real.
    apply(ledger, refund("d-1", "re_2", amount, amount, fee_refunded=80))
    assert summary(engine)["refunded"] == amount
    assert gift_state(engine, "d-1")[0] == amount
    assert summary(engine)["fund_balance"] == 0
    assert_books_balance(engine)


def test_reconciliation_matches_stripe_refund_failure_to_the_reversal(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, fee=64), refund("d-1", "re_1", 1350, 1350))
    apply(ledger, refund_failed("d-1", "re_1", 1350))
    when = datetime(2026, 1, 25, tzinfo=UTC)
    stripe_side = [
        StripeMovement("txn_ch_d-1", "charge", "ch_d-1", "EUR", 2700, 64, 2636, when),
        StripeMovement("txn_re_1", "refund", "re_1", "EUR", -1350, 0, -1350, when),
        StripeMovement("txn_re_1_failure", "refund_failure", "re_1", "EUR", 1350, 0, 1350, when),
    ]
    with engine.connect() as conn:
        report = reconcile("test", stripe_side, ledger_movements(conn))
    assert [(row["type"], row["kind"]) for row in report.matched] == [
        ("charge", "donation"),
        ("refund", "refund"),
        ("refund_failure", "refund_failed"),
    ]
    assert report.mismatched == report.only_in_stripe == report.only_in_ledger == []


def test_a_refund_failure_is_booked_once_whatever_announces_it_again(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700), refund("d-1", "re_1", 1350, 1350))
    failed = refund_failed("d-1", "re_1", 1350)
    again = refund_failed("d-1", "re_1", 1350)  # the same failure under another event id

    assert apply(ledger, failed, failed, again) == ["applied", "duplicate", "applied"]

    with engine.connect() as conn:
        kinds = [e["kind"] for e in views.journal(conn, campaign=CAMPAIGN)]
    assert sorted(kinds) == ["donation", "refund", "refund_failed"]
    found = summary(engine)
    assert (found["refunded"], found["meals_funded"], found["fund_balance"]) == (0, 2, 2700)
    assert_books_balance(engine)


def test_the_failure_of_a_refund_never_booked_changes_nothing(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700))
    before, gift_before = books(engine), gift_state(engine, "d-1")
    meals_events = len(outbox(engine, MEALS_FUNDED))

    assert apply(ledger, refund_failed("d-1", "re_never", 1350)) == ["applied"]

    assert books(engine) == before
    assert gift_state(engine, "d-1") == gift_before
    assert len(outbox(engine, MEALS_FUNDED)) == meals_events
    with engine.connect() as conn:
        assert [e["kind"] for e in views.journal(conn, campaign=CAMPAIGN)] == ["donation"]


# --- disputes ------------------------------------------------------------------------------------


def test_a_won_dispute_withdraws_then_reinstates_and_keeps_the_meals(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, fee=64), dispute_opened("d-1", "dp_1", 2700))
    assert balances(engine) == {
        "assets:stripe-clearing": 2636 - 2700 - 1500,
        "assets:disputed-funds": 2700,
        "expenses:dispute-fees": 1500,
        "expenses:processing-fees": 64,
        FUND: -2700,
    }
    assert summary(engine)["meals_funded"] == 2
    assert summary(engine)["disputed"] == 2700

    apply(ledger, dispute_closed("d-1", "dp_1", "won", 2700, fee_reinstated=1500))

    assert balances(engine) == {
        "assets:stripe-clearing": 2636,
        "expenses:processing-fees": 64,
        FUND: -2700,
    }
    assert summary(engine)["meals_funded"] == 2


def test_a_lost_dispute_takes_the_gift_from_the_fund_and_the_meals_and_the_fee_stays_lost(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, fee=64), gift("d-2", 1350, fee=40))
    apply(ledger, dispute_opened("d-1", "dp_1", 2700))
    closed = dispute_closed("d-1", "dp_1", "lost", 2700)
    apply(ledger, closed, dispute_closed("d-1", "dp_1", "lost", 2700))

    assert balances(engine) == {
        "assets:stripe-clearing": 2636 + 1310 - 2700 - 1500,
        "expenses:dispute-fees": 1500,
        "expenses:processing-fees": 104,
        FUND: -1350,
    }
    found = summary(engine)
    assert (found["meals_funded"], found["dispute_lost"], found["disputed"]) == (1, 2700, 0)
    assert_books_balance(engine)


# --- payouts and periods -------------------------------------------------------------------------


def test_a_payout_moves_clearing_to_the_bank_and_counts_as_paid_out_for_the_campaign(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, fee=64), gift("d-2", 1350, fee=40))
    paid = event(
        PAYOUT_PAID,
        {
            "payout_id": "po_1",
            "amount": 2636,
            "currency": "EUR",
            "arrival_date": "2026-01-18T00:00:00+00:00",
            "balance_transaction_ids": ["txn_ch_d-1"],
            "paid_at": "2026-01-17T00:00:00+00:00",
        },
    )
    apply(ledger, paid, paid)

    assert balances(engine)["assets:bank"] == 2636
    assert balances(engine)["assets:stripe-clearing"] == 1310
    assert summary(engine)["paid_out"] == 2636
    with engine.connect() as conn:
        [entry] = views.journal(conn, stripe_id="po_1")
    assert entry["kind"] == "payout"


def test_a_late_event_for_a_closed_month_posts_into_the_next_open_month_with_its_date(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700, when="2026-01-15T12:00:00+00:00"))
    with engine.begin() as conn:
        assert handlers.close_period(conn, "2026-01", "finance@example.org")
        assert not handlers.close_period(conn, "2026-01", "finance@example.org")

    apply(ledger, gift("d-2", 1350, when="2026-01-31T23:00:00+00:00"))

    with engine.connect() as conn:
        january = views.journal(conn, until=datetime(2026, 2, 1, tzinfo=UTC))
        [late] = views.journal(conn, stripe_id="ch_d-2")
    assert [e["donation_id"] for e in january] == ["d-1"]
    assert late["effective_at"].isoformat() == "2026-02-01T00:00:00+00:00"
    assert late["original_effective_at"].isoformat() == "2026-01-31T23:00:00+00:00"
    assert summary(engine)["meals_funded"] == 3  # the money counts; only the posting date moves


def test_a_period_is_a_month(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(handlers.Refused):
        handlers.close_period(conn, "January", "me")


# --- meals: prices from a date, milestones -------------------------------------------------------


def test_a_meal_price_change_applies_from_its_effective_date_only(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2800, when="2026-01-10T00:00:00+00:00"))
    change = event(
        MEAL_PRICE_CHANGED,
        {
            "campaign_id": CAMPAIGN,
            "slug": "petites-cantines",
            "currency": "EUR",
            "meal_price": 1000,
            "previous_meal_price": 1350,
            "effective_from": "2026-02-01T00:00:00+00:00",
        },
    )
    apply(ledger, change)
    # January: 28.00 at 13.50 = 2 meals, 1.00 carried into February at 10.00 a meal.
    assert (summary(engine)["meals_funded"], summary(engine)["remainder"]) == (2, 100)

    apply(ledger, gift("d-2", 1900, when="2026-02-02T00:00:00+00:00"))
    assert (summary(engine)["meals_funded"], summary(engine)["remainder"]) == (4, 0)

    # A late January gift still counts at January's price.
    apply(ledger, gift("d-3", 1250, when="2026-01-20T00:00:00+00:00"))
    # January 40.50 = 3 meals, nothing carried; February 19.00 = 1 meal, 9.00 carried.
    assert (summary(engine)["meals_funded"], summary(engine)["remainder"]) == (4, 900)


def test_milestones_are_announced_once_each_even_when_the_count_falls_back(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(goal_meals=8))
    apply(ledger, gift("d-1", 1350 * 2))  # 2 of 8: 25 % reached
    apply(ledger, gift("d-2", 1350 * 3))  # 5 of 8: 50 %
    apply(ledger, refund("d-2", "re_1", 1350 * 3, 1350 * 3))  # back to 2
    apply(ledger, gift("d-3", 1350 * 6))  # 8: 50 % again (not announced), 75 % and 100 %

    events = outbox(engine, MILESTONE_REACHED)
    reached = [part["milestone"] for m in events for part in m["data"]["milestones"]]
    assert reached == ["goal-25", "goal-50", "goal-75", "goal-100"]
    # One event per booking that crossed any, named after the highest it crossed.
    assert [m["data"]["milestone"] for m in events] == ["goal-25", "goal-50", "goal-100"]
    assert [m["data"]["meals"] for m in events] == [2, 4, 8]
    ids = {m["id"] for m in events}
    assert str(uuid.uuid5(uuid.NAMESPACE_URL, f"difts/ledger/milestone/{CAMPAIGN}/goal-50")) in ids


def test_every_hundred_meals_is_a_milestone(engine: Engine, ledger: IdempotentConsumer) -> None:
    apply(ledger, published(goal_meals=None), gift("d-1", 1350 * 250))

    [event] = outbox(engine, MILESTONE_REACHED)  # one gift, one moment
    reached = [part["milestone"] for part in event["data"]["milestones"]]
    assert reached == ["meals-100", "meals-200"]
    assert (event["data"]["milestone"], event["data"]["meals_funded"]) == ("meals-200", 250)


def test_a_gift_crossing_three_milestones_is_one_event_headed_by_the_highest(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(goal_meals=300), gift("d-1", 1350 * 160))

    [event] = outbox(engine, MILESTONE_REACHED)
    parts = [(p["milestone"], p["meals"]) for p in event["data"]["milestones"]]
    assert parts == [("goal-25", 75), ("goal-50", 150), ("meals-100", 100)]
    assert (event["data"]["milestone"], event["data"]["meals"]) == ("goal-50", 150)
    # Redelivered under another id, the gift is booked once and announces nothing more.
    apply(ledger, gift("d-1", 1350 * 160))
    assert len(outbox(engine, MILESTONE_REACHED)) == 1


def test_the_database_refuses_to_change_or_delete_a_journal_line(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2700))

    for statement in (update(store.journal_lines).values(amount=1), delete(store.journal_entries)):
        with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    assert balances(engine) == {"assets:stripe-clearing": 2700, FUND: -2700}
