"""The campaign events on an in-memory unit of work, and what they do to the meals: a campaign's
projection (even when its gifts arrive first), one slug per campaign and one currency once it
holds gifts, meal prices from their dates on, and milestones announced once each."""

from __future__ import annotations

import uuid

from services.shared.consumer import IdempotentConsumer
from services.shared.events import MEALS_FUNDED, MILESTONE_REACHED
from tests.unit.ledger.conftest import CAMPAIGN, apply, gift, price_changed, published, refund
from tests.unit.ledger.fakes import FakeUnitOfWork, balances, outbox, trial_totals
from tests.unit.ledger.fakes import campaign_summary as summary

# --- the campaign's projection ---------------------------------------------------------------


def test_a_gift_to_a_published_campaign_is_booked_and_funds_meals(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    assert apply(ledger, published()) == ["applied"]
    assert apply(ledger, gift("d-1", 2700, correlation_id="corr-1")) == ["applied"]

    assert summary(uow) == {
        "campaign": "petites-cantines",
        "campaign_id": "c-1",
        "title": "Les Petites Cantines",
        "currency": "EUR",
        "meal_price": 1350,
        "goal_meals": 1000,
        "donated": 2700,
        "refunded": 0,
        "donations": 1,
        "meals_funded": 2,
        "remainder": 0,
        "gift_meals": 2,
        "difts_amount": 0,
        "difts_received": 0,
        "dift_meals": 0,
    }
    [announced] = outbox(uow, MEALS_FUNDED)
    assert announced["type"] == MEALS_FUNDED
    assert announced["correlationid"] == "corr-1"
    assert announced["data"] == {
        "campaign_id": "c-1",
        "campaign_slug": "petites-cantines",
        "currency": "EUR",
        "meal_price": 1350,
        "meals_funded": 2,
        "previous_meals_funded": 0,
        "remainder": 0,
        "donation_id": "d-1",
        "donation_meals": 2,
    }


def test_the_journal_balances_and_the_fund_holds_what_was_given(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    for number, amount in enumerate([2700, 1000, 500, 1]):
        apply(ledger, gift(f"d-{number}", amount))

    per_currency = list(trial_totals(uow).items())
    fund = balances(uow).get("funds:campaign:c-1", 0)
    clearing = balances(uow).get("assets:stripe-clearing", 0)
    assert per_currency == [("EUR", 0)]
    assert (fund, clearing) == (-4201, 4201)
    assert summary(uow)["donated"] == 4201


def test_a_gift_before_its_campaign_is_booked_from_the_campaign_fields_it_carries(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    assert apply(ledger, gift("d-1", 2700)) == ["applied"]
    assert summary(uow)["meals_funded"] == 2
    assert summary(uow)["goal_meals"] is None

    assert apply(ledger, published(goal_meals=500)) == ["applied"]

    assert summary(uow)["goal_meals"] == 500
    assert summary(uow)["donated"] == 2700


def test_only_gifts_that_move_the_counter_announce_meals(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    for number, amount in enumerate([1000, 2700, 100, 300]):
        apply(ledger, gift(f"d-{number}", amount))

    counts = [
        (
            a["data"]["previous_meals_funded"],
            a["data"]["meals_funded"],
            a["data"]["donation_id"],
            a["data"]["donation_meals"],
        )
        for a in outbox(uow, MEALS_FUNDED)
    ]
    # 10.00 -> 0 meals; 37.00 -> 2; 38.00 -> 2; 41.00 -> 3 (remainder 0.50).
    assert counts == [(0, 2, "d-1", 2), (2, 3, "d-3", 1)]
    assert summary(uow)["remainder"] == 50


def test_the_same_payment_confirmed_under_another_event_id_is_counted_once(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    assert apply(ledger, gift("d-1", 2700)) == ["applied"]
    assert apply(ledger, gift("d-1", 2700)) == ["applied"]  # a new event id, the same donation

    assert summary(uow)["donated"] == 2700
    assert summary(uow)["donations"] == 1
    assert len(outbox(uow, MEALS_FUNDED)) == 1


def test_a_gift_in_another_currency_than_its_campaign_is_dead_lettered_and_changes_nothing(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published())

    outcome = ledger.apply(gift("d-1", 2700, currency="USD").to_json().encode())

    assert outcome.status == "dead_lettered"
    assert "USD" in (outcome.reason or "")
    assert summary(uow)["donated"] == 0
    assert len(uow.processed.ids) == 1


def test_a_campaign_claiming_another_campaigns_slug_is_dead_lettered(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(campaign_id="c-1"))

    assert apply(ledger, published(campaign_id="c-2")) == ["dead_lettered"]
    assert apply(ledger, gift("d-1", 2700, campaign_id="c-3")) == ["dead_lettered"]
    assert summary(uow)["campaign_id"] == "c-1"


def test_a_new_meal_price_recounts_the_meals_and_announces_the_change(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(meal_price=1350))
    apply(ledger, gift("d-1", 2700))

    apply(ledger, published(meal_price=900))

    found = summary(uow)
    assert (found["meal_price"], found["meals_funded"], found["remainder"]) == (900, 3, 0)
    last = outbox(uow, MEALS_FUNDED)[-1]["data"]
    assert (last["previous_meals_funded"], last["meals_funded"], last["donation_id"]) == (
        2,
        3,
        None,
    )


def test_a_campaign_cannot_change_currency_once_it_holds_gifts(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(currency="EUR"))
    assert apply(ledger, published(currency="USD")) == ["applied"]  # no gifts yet: a correction
    assert summary(uow)["currency"] == "USD"
    apply(ledger, gift("d-1", 2700, currency="USD"))

    assert apply(ledger, published(currency="EUR")) == ["dead_lettered"]
    assert summary(uow)["currency"] == "USD"


# --- meals: prices from a date, milestones ---------------------------------------------------


def test_a_meal_price_change_applies_from_its_effective_date_only(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(), gift("d-1", 2800, when="2026-01-10T00:00:00+00:00"))
    change = price_changed(1000, previous=1350, effective_from="2026-02-01T00:00:00+00:00")
    apply(ledger, change)
    # January: 28.00 at 13.50 = 2 meals, 1.00 carried into February at 10.00 a meal.
    assert (summary(uow)["meals_funded"], summary(uow)["remainder"]) == (2, 100)

    apply(ledger, gift("d-2", 1900, when="2026-02-02T00:00:00+00:00"))
    assert (summary(uow)["meals_funded"], summary(uow)["remainder"]) == (4, 0)

    # A late January gift still counts at January's price.
    apply(ledger, gift("d-3", 1250, when="2026-01-20T00:00:00+00:00"))
    # January 40.50 = 3 meals, nothing carried; February 19.00 = 1 meal, 9.00 carried.
    assert (summary(uow)["meals_funded"], summary(uow)["remainder"]) == (4, 900)


def test_milestones_are_announced_once_each_even_when_the_count_falls_back(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(goal_meals=8))
    apply(ledger, gift("d-1", 1350 * 2))  # 2 of 8: 25 % reached
    apply(ledger, gift("d-2", 1350 * 3))  # 5 of 8: 50 %
    apply(ledger, refund("d-2", "re_1", 1350 * 3, 1350 * 3))  # back to 2
    apply(ledger, gift("d-3", 1350 * 6))  # 8: 50 % again (not announced), 75 % and 100 %

    events = outbox(uow, MILESTONE_REACHED)
    reached = [part["milestone"] for m in events for part in m["data"]["milestones"]]
    assert reached == ["goal-25", "goal-50", "goal-75", "goal-100"]
    # One event per booking that crossed any, named after the highest it crossed.
    assert [m["data"]["milestone"] for m in events] == ["goal-25", "goal-50", "goal-100"]
    assert [m["data"]["meals"] for m in events] == [2, 4, 8]
    ids = {m["id"] for m in events}
    assert str(uuid.uuid5(uuid.NAMESPACE_URL, f"difts/ledger/milestone/{CAMPAIGN}/goal-50")) in ids


def test_every_hundred_meals_is_a_milestone(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(goal_meals=None), gift("d-1", 1350 * 250))

    [event] = outbox(uow, MILESTONE_REACHED)  # one gift, one moment
    reached = [part["milestone"] for part in event["data"]["milestones"]]
    assert reached == ["meals-100", "meals-200"]
    assert (event["data"]["milestone"], event["data"]["meals_funded"]) == ("meals-200", 250)


def test_a_gift_crossing_three_milestones_is_one_event_headed_by_the_highest(
    uow: FakeUnitOfWork, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(goal_meals=300), gift("d-1", 1350 * 160))

    [event] = outbox(uow, MILESTONE_REACHED)
    parts = [(p["milestone"], p["meals"]) for p in event["data"]["milestones"]]
    assert parts == [("goal-25", 75), ("goal-50", 150), ("meals-100", 100)]
    assert (event["data"]["milestone"], event["data"]["meals"]) == ("goal-50", 150)
    # Redelivered under another id, the gift is booked once and announces nothing more.
    apply(ledger, gift("d-1", 1350 * 160))
    assert len(outbox(uow, MILESTONE_REACHED)) == 1
