"""A company programme's books against real Kafka and PostgreSQL: funding, difts directed
(some split), difts given by the fallback and the credit back at closing, consumed live with
every event delivered twice and a restart, then replayed from offset 0 into an empty ledger:
the same books, each dift counted once, the programme's balance at zero."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from services.ledger import views
from services.shared.envelope import CloudEvent
from services.shared.events import CAMPAIGNS_TOPIC, PROGRAMMES_TOPIC
from services.shared.money import Money, split_evenly
from tests.integration.ledger.conftest import Topics, migrated, record_outcomes
from tests.integration.ledger.test_replay import books_of
from tests.support import infra
from tests.support.loops import running, wait_until
from tests.unit.ledger.conftest import (
    allocation,
    credited_back,
    directed,
    expired,
    funded,
    published,
)

pytestmark = pytest.mark.integration

VALUE = 2000


@pytest.fixture
def second_database(postgres_admin_url: str) -> Iterator[str]:
    with infra.fresh_database(postgres_admin_url, prefix="programme_replay") as url:
        yield url


def causes(tag: str) -> list[dict[str, str]]:
    return [{"id": f"{tag}-c{n}", "slug": f"cantine-{tag}-c{n}"} for n in range(3)]


def history(tag: str, programme_id: str) -> tuple[list[CloudEvent], list[CloudEvent]]:
    """The shortlist's campaigns, then the programme's life: 10 difts funded by bank transfer,
    6 directed (every other one split), 3 given by an even split at expiry, one left unissued
    and credited back at closing."""
    shortlist = causes(tag)
    campaigns = [
        published(campaign_id=c["id"], slug=c["slug"], meal_price=1350, goal_meals=None)
        for c in shortlist
    ]
    ids = [c["id"] for c in shortlist]
    life = [funded(f"{tag}-bank", 10 * VALUE, method="bank_transfer", programme_id=programme_id)]
    for n in range(6):
        parts = (
            [allocation(ids[n % 3], VALUE, 1350)]
            if n % 2
            else [allocation(ids[0], 1000, 1350), allocation(ids[2], 1000, 1350)]
        )
        life.append(directed(f"{tag}-d{n}", VALUE, parts, programme_id=programme_id))
    shares = split_evenly(Money(VALUE, "EUR"), 3)
    for n in range(6, 9):
        parts = [
            allocation(cid, share.amount, 1350) for cid, share in zip(ids, shares, strict=True)
        ]
        life.append(expired(f"{tag}-d{n}", VALUE, parts, programme_id=programme_id))
    life.append(credited_back(f"{tag}-close", VALUE, programme_id=programme_id))
    return campaigns, life


def programme_books(engine: Engine, programme_id: str, tag: str) -> dict[str, Any]:
    with engine.connect() as conn:
        balance = views.programme_balance(conn, programme_id)
    shortlist = causes(tag)
    return {
        "balance": balance,
        "campaigns": [books_of(engine, campaign) for campaign in shortlist],
    }


def test_a_programme_replayed_from_offset_0_gives_the_same_books_and_a_zero_balance(
    database_url: str, second_database: str, topics: Topics
) -> None:
    tag = uuid.uuid4().hex[:10]
    programme_id = f"p-{tag}"
    campaigns, life = history(tag, programme_id)
    live_engine = migrated(database_url)
    live = topics.consumer(live_engine, f"test-programme-live-{tag}")
    outcomes = record_outcomes(live)

    for event in campaigns:
        topics.send(CAMPAIGNS_TOPIC, event.data["campaign_id"], event)
    half = len(life) // 2
    topics.send(PROGRAMMES_TOPIC, programme_id, *life[:half])
    with running(live.run):
        wait_until(lambda: outcomes[life[half - 1].id] == ["applied"], "the first half")
    for event in life[half:]:  # after a restart, every event twice
        topics.send(PROGRAMMES_TOPIC, programme_id, event, event)
    with running(live.run):
        wait_until(lambda: outcomes[life[-1].id] == ["applied", "duplicate"], "the second half")
    live_books = programme_books(live_engine, programme_id, tag)

    replay_engine = migrated(second_database)
    replay = topics.consumer(replay_engine, f"test-programme-replay-{tag}")
    replayed = record_outcomes(replay)
    with running(replay.run):
        wait_until(lambda: bool(replayed[life[-1].id]), "the replay to reach the end")
    replay_books = programme_books(replay_engine, programme_id, tag)

    assert replay_books == live_books
    balance = live_books["balance"]
    assert balance is not None
    assert (balance["funded"], balance["directed"], balance["expired_given"]) == (
        10 * VALUE,
        6 * VALUE,
        3 * VALUE,
    )
    assert (balance["credited_back"], balance["balance"], balance["fund_balance"]) == (VALUE, 0, 0)
    assert (balance["difts_directed"], balance["difts_expired"]) == (6, 3)
    received = {c["campaign_id"]: c["amount"] for c in balance["campaigns"]}
    first, second, third = (c["id"] for c in causes(tag))
    # Split difts d0, d2, d4 give 10 € to the first and the third; d1, d3, d5 all to one each;
    # the three expired ones 6.67 / 6.67 / 6.66 (the remainder cent to the first entries).
    assert received == {
        first: 3 * 1000 + VALUE + 3 * 667,
        second: VALUE + 3 * 667,
        third: 3 * 1000 + VALUE + 3 * 666,
    }
    assert sum(received.values()) == 9 * VALUE
    for books in live_books["campaigns"]:
        summary = books["summary"]
        assert summary["meals_funded"] == summary["fund_balance"] // 1350
    live_engine.dispose()
    replay_engine.dispose()
