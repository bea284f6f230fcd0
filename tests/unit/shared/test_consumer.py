"""The idempotent consumer's decisions: apply once, skip the unknown, dead-letter the
unreadable and the impossible, and retry (never dead-letter) when the database is in trouble.

A SQLite file stands in for the service database; the dead-letter producer is a fake that
records what it was given (unit tests only: integration tests use real Kafka)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, select, text
from sqlalchemy.exc import OperationalError

from services.shared.consumer import IdempotentConsumer, PoisonEvent, processed_events_table
from services.shared.db import make_engine
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import CAMPAIGN_PUBLISHED, dead_letter_topic
from services.shared.unit_of_work import SqlProcessedEvents, SqlUnitOfWork

metadata = MetaData()
processed = processed_events_table(metadata)
campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String, primary_key=True),
    Column("slug", String, unique=True),
    Column("meal_price", Integer),
)
DATA = {
    "campaign_id": "c-1",
    "slug": "petites-cantines",
    "title": "Canteens",
    "cause": "LPC",
    "currency": "EUR",
    "meal_price": 1350,
}


@dataclass
class Record:
    value: bytes
    topic: str = "campaigns.events"
    partition: int = 0
    offset: int = 0
    key: bytes = b"c-1"


@dataclass
class DeadLetters:
    sent: list[tuple[str, bytes, dict[str, bytes]]] = field(default_factory=list)

    def send(self, topic: str, key: bytes, value: bytes, headers: list[Any]) -> Any:
        self.sent.append((topic, value, dict(headers)))
        return self

    def get(self, timeout: float) -> None:
        return None


class ServiceUnitOfWork(SqlUnitOfWork):
    """The stand-in service's transaction (it publishes nothing)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, None, processed)


def insert_campaign(event: CloudEvent, uow: ServiceUnitOfWork) -> None:
    conn, data = uow.connection, event.data
    if data["meal_price"] == 999:
        raise PoisonEvent("this meal price can never be applied")
    if data["meal_price"] == 777:
        conn.execute(text("SELECT * FROM no_such_table"))  # the database is not migrated
    conn.execute(
        campaigns.insert().values(
            campaign_id=data["campaign_id"], slug=data["slug"], meal_price=data["meal_price"]
        )
    )


@pytest.fixture(params=["per-event", "as-a-set"])
def consumer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IdempotentConsumer]:
    """The consumer of a stand-in service, applying each event in a savepoint of its own, or
    a poll's events as a set (on the unit of work itself, its default batch): every decision
    below must be the same either way."""
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    metadata.create_all(engine)
    yield IdempotentConsumer(
        unit_of_work=lambda: ServiceUnitOfWork(engine),
        group_id="ledger",
        topics=("campaigns.events",),
        handlers={CAMPAIGN_PUBLISHED: insert_campaign},
        bootstrap_servers="127.0.0.1:1",
        dead_letter_producer=DeadLetters(),  # type: ignore[arg-type]
        set_types=(CAMPAIGN_PUBLISHED,) if request.param == "as-a-set" else (),
    )
    engine.dispose()


def event(**data: Any) -> CloudEvent:
    return new_event(CAMPAIGN_PUBLISHED, "test", {**DATA, **data})


def rows(consumer: IdempotentConsumer) -> list[Any]:
    with consumer.unit_of_work().engine.connect() as conn:
        return list(conn.execute(select(campaigns)).all())


def dead(consumer: IdempotentConsumer) -> list[tuple[str, bytes, dict[str, bytes]]]:
    return consumer.dead_letters.sent  # type: ignore[attr-defined, no-any-return]


def test_the_same_event_twice_is_applied_once(consumer: IdempotentConsumer) -> None:
    raw = event().to_json().encode()
    assert consumer.handle(Record(raw)).status == "applied"
    assert consumer.handle(Record(raw, offset=1)).status == "duplicate"
    assert len(rows(consumer)) == 1


def test_an_unknown_type_is_skipped_not_dead_lettered(consumer: IdempotentConsumer) -> None:
    raw = new_event("difts.campaign.renamed.v9", "test", {}).to_json().encode()
    assert consumer.handle(Record(raw)).status == "skipped"
    assert dead(consumer) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff not json",
        b'{"specversion": "1.0"}',
        event(meal_price="13.50").to_json().encode(),
        event(meal_price=999).to_json().encode(),
    ],
    ids=["not-json", "not-an-envelope", "invalid-data", "poison"],
)
def test_what_can_never_be_applied_goes_to_dead_letters_with_a_reason(
    consumer: IdempotentConsumer, raw: bytes
) -> None:
    outcome = consumer.handle(Record(raw, offset=7))
    assert outcome.status == "dead_lettered"
    ((topic, value, headers),) = dead(consumer)
    assert topic == dead_letter_topic("ledger")
    assert value == raw
    assert headers["reason"] and headers["original-offset"] == b"7"
    assert rows(consumer) == []


def test_an_event_breaking_a_constraint_is_dead_lettered_not_retried_forever(
    consumer: IdempotentConsumer,
) -> None:
    assert consumer.handle(Record(event().to_json().encode())).status == "applied"
    same_slug = event(campaign_id="c-2").to_json().encode()
    outcome = consumer.handle(Record(same_slug))
    assert outcome.status == "dead_lettered"
    assert "constraint" in (outcome.reason or "")
    assert len(rows(consumer)) == 1


def test_database_trouble_is_raised_for_a_retry_and_nothing_is_recorded(
    consumer: IdempotentConsumer,
) -> None:
    raw = event(meal_price=777).to_json().encode()
    with pytest.raises(OperationalError):
        consumer.handle(Record(raw))
    assert dead(consumer) == []
    with consumer.unit_of_work().engine.connect() as conn:
        assert conn.execute(select(processed)).all() == []


def test_a_batch_applies_its_good_events_around_a_poisoned_one(
    consumer: IdempotentConsumer,
) -> None:
    first = event(campaign_id="c-1", slug="one").to_json().encode()
    poisoned = event(campaign_id="c-2", slug="two", meal_price=999).to_json().encode()
    third = event(campaign_id="c-3", slug="three").to_json().encode()
    outcomes = consumer.handle_batch(
        [Record(first), Record(poisoned, offset=1), Record(third, offset=2), Record(first, 3)]
    )
    assert [o.status for o in outcomes] == ["applied", "dead_lettered", "applied", "duplicate"]
    assert sorted(row.slug for row in rows(consumer)) == ["one", "three"]
    assert [headers["original-offset"] for _, _, headers in dead(consumer)] == [b"1"]


def test_database_trouble_rolls_the_whole_batch_back_for_a_retry(
    consumer: IdempotentConsumer,
) -> None:
    good = event(campaign_id="c-1", slug="one").to_json().encode()
    broken = event(campaign_id="c-2", slug="two", meal_price=777).to_json().encode()
    with pytest.raises(OperationalError):
        consumer.handle_batch([Record(good), Record(broken, offset=1)])
    assert rows(consumer) == []
    assert consumer.handle_batch([Record(good)])[0].status == "applied"


def test_a_set_claims_the_ids_of_its_events_in_one_statement(
    consumer: IdempotentConsumer,
) -> None:
    events = [event(campaign_id=f"c-{n}", slug=f"slug-{n}") for n in range(5)]
    claims: list[int] = []
    claim, claim_all = SqlProcessedEvents.claim, SqlProcessedEvents.claim_all

    def counting_claim(self: SqlProcessedEvents, one: CloudEvent) -> bool:
        claims.append(1)
        return claim(self, one)

    def counting_claim_all(self: SqlProcessedEvents, many: Any) -> set[str]:
        claims.append(len(many))
        return claim_all(self, many)

    records = [Record(e.to_json().encode(), offset=n) for n, e in enumerate([*events, events[0]])]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SqlProcessedEvents, "claim", counting_claim)
        patch.setattr(SqlProcessedEvents, "claim_all", counting_claim_all)
        outcomes = consumer.handle_batch(records)
    assert [o.status for o in outcomes] == ["applied"] * 5 + ["duplicate"]
    assert claims == ([5] if consumer.set_types else [1] * 6)
    assert len(rows(consumer)) == 5


def test_each_outcome_and_dead_letter_is_counted_for_the_group(
    consumer: IdempotentConsumer,
) -> None:
    def count(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    consumed = {"group": "ledger", "type": CAMPAIGN_PUBLISHED}
    before = {
        outcome: count("difts_consumed_events_total", **consumed, outcome=outcome)
        for outcome in ("applied", "duplicate", "dead_lettered")
    }
    dead_before = count("difts_dead_letters_total", group="ledger", topic="campaigns.events")
    delays_before = count("difts_event_apply_delay_seconds_count", **consumed)
    good, poisoned = event(), event(campaign_id="c-2", slug="two", meal_price=999)
    raws = [e.to_json().encode() for e in (good, poisoned, good)]
    consumer.handle_batch([Record(raw, offset=n) for n, raw in enumerate(raws)])
    after = {
        outcome: count("difts_consumed_events_total", **consumed, outcome=outcome) - before[outcome]
        for outcome in before
    }
    assert after == {"applied": 1, "duplicate": 1, "dead_lettered": 1}
    dead = count("difts_dead_letters_total", group="ledger", topic="campaigns.events")
    assert dead - dead_before == 1
    assert count("difts_event_apply_delay_seconds_count", **consumed) - delays_before == 1
