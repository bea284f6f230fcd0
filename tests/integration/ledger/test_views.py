"""The reads of views.py on PostgreSQL answer what the unit tests read from their in-memory
fake (tests/unit/ledger/fakes.py) after the same history: so the handler tests' assertions on
the fake's journal, summaries and outbox say what the service answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from services.ledger import handlers, store, views
from services.ledger.consumer import build_consumer
from services.ledger.unit_of_work import LedgerUnitOfWork
from services.shared.envelope import CloudEvent
from tests.unit.ledger import conftest as given
from tests.unit.ledger import fakes
from tests.unit.ledger.conftest import CAMPAIGN, SLUG

pytestmark = pytest.mark.integration


def history() -> list[CloudEvent]:
    """Gifts with fees and cover, a late gift, refunds (one that fails), disputes won and lost,
    and a payout."""
    return [
        given.published(goal_meals=4),
        given.gift("d-1", 2780, fee=66, fee_covered=80),
        given.gift("d-2", 1350, fee=40, when="2026-01-20T12:00:00+00:00"),
        given.gift("d-3", 4050, fee=80, when="2026-01-31T23:00:00+00:00"),
        given.refund("d-1", "re_1", 1000, 1000, fee_refunded=20),
        given.refund_failed("d-1", "re_1", 1000),
        given.refund("d-1", "re_2", 700, 700),
        given.dispute_opened("d-2", "dp_1", 1350),
        given.dispute_closed("d-2", "dp_1", "lost", 1350),
        given.dispute_opened("d-3", "dp_2", 4050),
        given.dispute_closed("d-3", "dp_2", "won", 4050, fee_reinstated=1500),
        given.payout("po_1", 2714, ["txn_ch_d-1"]),
    ]


def book_on_both(engine: Engine) -> fakes.FakeUnitOfWork:
    """The history through the handlers on the fake and through the consumer on PostgreSQL,
    with the same finance commands in between (a fee policy, a closed month)."""
    fake = fakes.FakeUnitOfWork()
    on_fake = given.consumer_of(fake)
    on_postgres = build_consumer(engine, "127.0.0.1:1", "ledger", None)  # type: ignore[arg-type]
    events = history()
    policy = handlers.SetFeePolicy(SLUG, "campaign")
    january = handlers.ClosePeriod("2026-01", "finance@example.org")
    for number, event in enumerate(events):
        if number == 2:
            for uow in (fake, LedgerUnitOfWork(engine)):
                with uow:
                    handlers.set_fee_policy(policy, uow)  # type: ignore[arg-type]
        if number == 3:
            for uow in (fake, LedgerUnitOfWork(engine)):
                with uow:
                    handlers.close_period(january, uow)  # type: ignore[arg-type]
        raw = event.to_json().encode()
        assert on_fake.apply(raw).status == on_postgres.apply(raw).status == "applied"
    return fake


def without(entries: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in entry.items() if k not in keys} for entry in entries]


def test_the_views_answer_what_the_fake_answers_after_the_same_history(engine: Engine) -> None:
    fake = book_on_both(engine)

    with engine.connect() as conn:
        assert views.campaign_summary(conn, SLUG) == fakes.campaign_summary(fake)
        assert views.campaign_finance_summary(conn, SLUG) == fakes.finance_summary(fake)
        trial = views.trial_balance(conn)
        assert {r["account"]: r["balance"] for r in trial["accounts"] if r["balance"]} == (
            fakes.balances(fake)
        )
        assert views.unbalanced_entries(conn) == fakes.unbalanced_entries(fake) == []
        for filters in (
            {"campaign": CAMPAIGN},
            {"campaign": SLUG},
            {"stripe_id": "ch_d-3"},
            {"stripe_id": "po_1"},
            {"until": datetime(2026, 2, 1, tzinfo=UTC)},
        ):
            found = without(views.journal(conn, limit=None, **filters), "created_at")
            assert found == without(fakes.journal(fake, **filters), "created_at"), filters
        rows = conn.execute(
            select(store.outbox.c.topic, store.outbox.c.key, store.outbox.c.payload).order_by(
                store.outbox.c.seq
            )
        ).all()
    queued = [(row.topic, row.key, _without_time(json.loads(row.payload))) for row in rows]
    expected = [
        (topic, key, _without_time(json.loads(event.to_json())))
        for topic, key, event in fake.outbox.events
    ]
    assert queued == expected
    assert {event["type"] for _topic, _key, event in queued} == {
        "difts.ledger.donation_booked.v1",
        "difts.ledger.meals_funded.v1",
        "difts.ledger.milestone_reached.v1",
    }
    [late] = [e for e in fakes.journal(fake, stripe_id="ch_d-3") if e["kind"] == "donation"]
    assert late["effective_at"].isoformat() == "2026-02-01T00:00:00+00:00"  # January closed


def _without_time(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key != "time"}


def test_a_campaign_the_ledger_does_not_know_has_no_summary(engine: Engine) -> None:
    with engine.connect() as conn:
        assert views.campaign_summary(conn, "nobody") is None
        assert views.campaign_finance_summary(conn, "nobody") is None
