"""The ledger's event handlers on its embedded SQLite database (no broker: events are applied
with IdempotentConsumer.apply, which is what the Kafka loop calls for each record)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from services.ledger import store, views
from services.ledger.__main__ import MIGRATIONS
from services.ledger.consumer import build_consumer
from services.shared.consumer import IdempotentConsumer
from services.shared.db import make_engine, upgrade
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import CAMPAIGN_PUBLISHED, DONATION_SUCCEEDED, MEALS_FUNDED


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url, MIGRATIONS)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(engine: Engine) -> IdempotentConsumer:
    # apply() never dead-letters by itself, so no producer is needed here.
    return build_consumer(engine, "127.0.0.1:1", "ledger", dead_letter_producer=None)  # type: ignore[arg-type]


def published(
    campaign_id: str = "c-1",
    slug: str = "petites-cantines",
    meal_price: int = 1350,
    currency: str = "EUR",
    goal_meals: int | None = 1000,
) -> CloudEvent:
    return new_event(
        CAMPAIGN_PUBLISHED,
        "difts/donations",
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


def gift(
    donation_id: str,
    amount: int,
    campaign_id: str = "c-1",
    slug: str = "petites-cantines",
    currency: str = "EUR",
    meal_price: int = 1350,
    correlation_id: str | None = None,
) -> CloudEvent:
    return new_event(
        DONATION_SUCCEEDED,
        "difts/donations",
        {
            "donation_id": donation_id,
            "campaign_id": campaign_id,
            "campaign_slug": slug,
            "campaign_title": "Les Petites Cantines",
            "amount": amount,
            "currency": currency,
            "meal_price": meal_price,
            "donor": {"email": "donor@example.org", "name": "A donor"},
            "payment_intent_id": f"pi_{donation_id}",
            "succeeded_at": "2026-01-15T12:00:00+00:00",
        },
        correlation_id=correlation_id,
    )


def apply(ledger: IdempotentConsumer, event: CloudEvent) -> str:
    return ledger.apply(event.to_json().encode()).status


def summary(engine: Engine, slug: str = "petites-cantines") -> dict[str, Any]:
    with engine.connect() as conn:
        found = views.campaign_summary(conn, slug)
    assert found is not None
    return found


def announcements(engine: Engine, event_type: str = MEALS_FUNDED) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        payloads = conn.execute(
            select(store.outbox.c.payload)
            .where(store.outbox.c.event_type == event_type)
            .order_by(store.outbox.c.seq)
        ).scalars()
        return [json.loads(payload) for payload in payloads]


def test_a_gift_to_a_published_campaign_is_booked_and_funds_meals(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    assert apply(ledger, published()) == "applied"
    assert apply(ledger, gift("d-1", 2700, correlation_id="corr-1")) == "applied"

    assert summary(engine) == {
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
    }
    [announced] = announcements(engine)
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
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    for number, amount in enumerate([2700, 1000, 500, 1]):
        apply(ledger, gift(f"d-{number}", amount))

    with engine.connect() as conn:
        per_currency = conn.execute(
            select(store.journal_lines.c.currency, func.sum(store.journal_lines.c.amount)).group_by(
                store.journal_lines.c.currency
            )
        ).all()
        fund = store.account_balance(conn, "funds:campaign:c-1", "EUR")
        clearing = store.account_balance(conn, "assets:stripe-clearing", "EUR")
    assert per_currency == [("EUR", 0)]
    assert (fund, clearing) == (-4201, 4201)
    assert summary(engine)["donated"] == 4201


def test_a_gift_before_its_campaign_is_booked_from_the_campaign_fields_it_carries(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    assert apply(ledger, gift("d-1", 2700)) == "applied"
    assert summary(engine)["meals_funded"] == 2
    assert summary(engine)["goal_meals"] is None

    assert apply(ledger, published(goal_meals=500)) == "applied"

    assert summary(engine)["goal_meals"] == 500
    assert summary(engine)["donated"] == 2700


def test_only_gifts_that_move_the_counter_announce_meals(
    engine: Engine, ledger: IdempotentConsumer
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
        for a in announcements(engine)
    ]
    # 10.00 -> 0 meals; 37.00 -> 2; 38.00 -> 2; 41.00 -> 3 (remainder 0.50).
    assert counts == [(0, 2, "d-1", 2), (2, 3, "d-3", 1)]
    assert summary(engine)["remainder"] == 50


def test_the_same_payment_confirmed_under_another_event_id_is_counted_once(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    assert apply(ledger, gift("d-1", 2700)) == "applied"
    assert apply(ledger, gift("d-1", 2700)) == "applied"  # a new event id, the same donation

    assert summary(engine)["donated"] == 2700
    assert summary(engine)["donations"] == 1
    assert len(announcements(engine)) == 1


def test_a_gift_in_another_currency_than_its_campaign_is_dead_lettered_and_changes_nothing(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published())

    outcome = ledger.apply(gift("d-1", 2700, currency="USD").to_json().encode())

    assert outcome.status == "dead_lettered"
    assert "USD" in (outcome.reason or "")
    assert summary(engine)["donated"] == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(store.processed)).scalar() == 1


def test_a_campaign_claiming_another_campaigns_slug_is_dead_lettered(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(campaign_id="c-1"))

    assert apply(ledger, published(campaign_id="c-2")) == "dead_lettered"
    assert apply(ledger, gift("d-1", 2700, campaign_id="c-3")) == "dead_lettered"
    assert summary(engine)["campaign_id"] == "c-1"


def test_a_new_meal_price_recounts_the_meals_and_announces_the_change(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(meal_price=1350))
    apply(ledger, gift("d-1", 2700))

    apply(ledger, published(meal_price=900))

    found = summary(engine)
    assert (found["meal_price"], found["meals_funded"], found["remainder"]) == (900, 3, 0)
    last = announcements(engine)[-1]["data"]
    assert (last["previous_meals_funded"], last["meals_funded"], last["donation_id"]) == (
        2,
        3,
        None,
    )


def test_a_campaign_cannot_change_currency_once_it_holds_gifts(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    apply(ledger, published(currency="EUR"))
    assert apply(ledger, published(currency="USD")) == "applied"  # no gifts yet: a correction
    assert summary(engine)["currency"] == "USD"
    apply(ledger, gift("d-1", 2700, currency="USD"))

    assert apply(ledger, published(currency="EUR")) == "dead_lettered"
    assert summary(engine)["currency"] == "USD"


def test_an_unknown_campaign_has_no_summary(engine: Engine) -> None:
    with engine.connect() as conn:
        assert views.campaign_summary(conn, "nobody") is None
