"""A poll's gifts booked as a set give the books the per-event path gives, on PostgreSQL and
SQLite: the same entries and lines, totals, meals and remainders, gifts, milestones and
outbox events, whatever histories of gifts, refunds, refund failures, disputes, price
changes, redeliveries (inside one poll and across polls) and poison events are applied; a
poison gift goes to dead letters alone; database trouble rolls the whole poll back."""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import OperationalError

from services.ledger import store
from services.ledger.consumer import TOPICS, build_consumer
from services.ledger.handlers import EVENT_HANDLERS
from services.ledger.unit_of_work import LedgerUnitOfWork
from services.shared.consumer import IdempotentConsumer
from services.shared.envelope import CloudEvent
from services.shared.events import (
    DONATION_SUCCEEDED,
    DONATIONS_TOPIC,
    dead_letter_topic,
)
from services.shared.kafka import PARTITIONS, ensure_topics
from tests.integration.ledger.conftest import Topics, migrated, read_topic, record_outcomes
from tests.support import infra
from tests.support.loops import running, wait_until
from tests.unit.ledger.conftest import (
    CAMPAIGN,
    SLUG,
    dispute_closed,
    dispute_opened,
    gift,
    price_changed,
    published,
    refund,
    refund_failed,
)

pytestmark = pytest.mark.integration

CAMPAIGNS = [(CAMPAIGN, SLUG), ("c-2", "cantine-bagnolet"), ("c-3", "cantine-bruz")]


@dataclass
class Record:
    """A record as a poll returns it (what handle_batch reads of one)."""

    value: bytes
    offset: int
    topic: str = "donations.events"
    partition: int = 0
    key: bytes = CAMPAIGN.encode()


# --- two ledgers fed the same polls -----------------------------------------------------------


@pytest.fixture(params=["postgresql", "sqlite"])
def engines(
    request: pytest.FixtureRequest, postgres_admin_url: str, tmp_path: Path
) -> Iterator[tuple[Engine, Engine]]:
    """Two empty ledger databases of one kind: one for each path."""
    with infra.fresh_database(postgres_admin_url) as first:
        with infra.fresh_database(postgres_admin_url) as second:
            if request.param == "sqlite":
                first, second = (f"sqlite:///{tmp_path / name}.db" for name in ("set", "each"))
            pair = (migrated(first), migrated(second))
            yield pair
            for engine in pair:
                engine.dispose()


def set_ledger(
    engine: Engine, bootstrap: str, producer: KafkaProducer, prefix: str
) -> IdempotentConsumer:
    """The ledger's consumer as it runs: gifts applied as a set."""
    group = f"test-set-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, consumer_groups=(group,), prefix=prefix)
    return build_consumer(engine, bootstrap, group, producer, topic_prefix=prefix)


def per_event_ledger(
    engine: Engine, bootstrap: str, producer: KafkaProducer, prefix: str
) -> IdempotentConsumer:
    """The same consumer without sets: every event in a savepoint of its own."""
    group = f"test-each-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, consumer_groups=(group,), prefix=prefix)
    return IdempotentConsumer(
        unit_of_work=lambda: LedgerUnitOfWork(engine),
        group_id=group,
        topics=TOPICS,
        handlers=EVENT_HANDLERS,
        bootstrap_servers=bootstrap,
        dead_letter_producer=producer,
        topic_prefix=prefix,
    )


def books(engine: Engine) -> dict[str, Any]:
    """Everything the ledger wrote, without the moments of writing and the entries' numbers
    (entries in order, each line naming its entry by position)."""
    with engine.connect() as conn:

        def rows(table: Any, *order: Any, without: tuple[str, ...] = ()) -> list[dict[str, Any]]:
            found = conn.execute(select(table).order_by(*order)).mappings()
            return [{k: v for k, v in row.items() if k not in without} for row in found]

        entries = rows(store.journal_entries, store.journal_entries.c.id)
        position = {entry["id"]: n for n, entry in enumerate(entries)}
        lines = [
            {**line, "entry_id": position[line["entry_id"]]}
            for line in rows(store.journal_lines, store.journal_lines.c.id, without=("id",))
        ]
        outbox = []
        for row in rows(store.outbox, store.outbox.c.seq, without=("seq", "created_at")):
            payload = json.loads(row.pop("payload"))
            payload.pop("time")
            outbox.append({**row, "payload": payload})
        return {
            "entries": [
                {k: v for k, v in entry.items() if k not in ("id", "created_at")}
                for entry in entries
            ],
            "lines": lines,
            "campaigns": rows(
                store.campaigns, store.campaigns.c.campaign_id, without=("updated_at",)
            ),
            "totals": rows(
                store.campaign_totals,
                store.campaign_totals.c.campaign_id,
                without=("updated_at",),
            ),
            "periods": rows(
                store.meal_periods, store.meal_periods.c.campaign_id, store.meal_periods.c.starts_at
            ),
            "gifts": rows(store.gifts, store.gifts.c.donation_id),
            "milestones": rows(
                store.milestones_reached,
                store.milestones_reached.c.campaign_id,
                store.milestones_reached.c.milestone,
            ),
            "outbox": outbox,
            "processed": rows(
                store.processed, store.processed.c.event_id, without=("processed_at",)
            ),
        }


# --- random histories ---------------------------------------------------------------------------


def history(seed: int) -> tuple[list[CloudEvent], list[list[CloudEvent]]]:
    """The campaigns (published first), then a random history cut into polls."""
    rng = random.Random(seed)
    opening = [published(goal_meals=20, campaign_id=c, slug=s) for c, s in CAMPAIGNS]
    events: list[CloudEvent] = []
    gifts: list[tuple[str, int]] = []  # the campaign's (c-1) gifts: id and amount
    refunds: list[tuple[str, str, int]] = []
    for n in range(70):
        roll = rng.random()
        if roll < 0.5 or not gifts:
            campaign_id, slug = rng.choice(CAMPAIGNS)
            amount = rng.randrange(300, 6000)
            fee = rng.choice([None, rng.randrange(0, 200)])
            covered = rng.choice([0, 0, min(amount - 1, fee or 0)])
            day = rng.randrange(10, 28)
            donation_id = f"d-{seed}-{n}"
            events.append(
                gift(
                    donation_id,
                    amount,
                    fee=fee,
                    fee_covered=covered,
                    when=f"2026-01-{day}T12:00:00+00:00",
                    campaign_id=campaign_id,
                    slug=slug,
                    correlation_id=f"corr-{n}",
                )
            )
            if campaign_id == CAMPAIGN:
                gifts.append((donation_id, amount))
        elif roll < 0.62:
            donation_id, amount = rng.choice(gifts)
            refund_id = f"re-{seed}-{n}"
            # Now and then more than the gift: that refund can never be booked.
            part = rng.randrange(1, amount // 3 if rng.random() < 0.8 else amount + 500)
            events.append(refund(donation_id, refund_id, part, part, rng.choice([0, 10])))
            refunds.append((donation_id, refund_id, part))
        elif roll < 0.67 and refunds:
            donation_id, refund_id, part = rng.choice(refunds)
            events.append(refund_failed(donation_id, refund_id, part))
        elif roll < 0.72:
            donation_id, amount = rng.choice(gifts)
            dispute_id = f"dp-{seed}-{n}"
            events.append(dispute_opened(donation_id, dispute_id, amount))
            status = rng.choice(["won", "lost"])
            events.append(dispute_closed(donation_id, dispute_id, status, amount))
        elif roll < 0.74:
            day = rng.randrange(12, 26)
            events.append(price_changed(1500, 1350, f"2026-01-{day}T00:00:00+00:00"))
        elif roll < 0.86:
            events.append(rng.choice(events))  # a redelivery
        elif roll < 0.92:
            # The same payment announced again under another event id.
            announced = rng.choice([e for e in events if e.type == DONATION_SUCCEEDED])
            events.append(replace(announced, id=str(uuid.uuid4())))
        else:
            # A gift that can never be booked: in another currency than its campaign's.
            campaign_id, slug = rng.choice(CAMPAIGNS)
            events.append(
                gift(f"usd-{seed}-{n}", 1000, currency="USD", campaign_id=campaign_id, slug=slug)
            )
    polls: list[list[CloudEvent]] = []
    while events:
        size = rng.randrange(1, 16)
        polls.append(events[:size])
        events = events[size:]
    return opening, polls


def feed(
    ledger: IdempotentConsumer, polls: list[list[CloudEvent]]
) -> list[list[tuple[str, str | None]]]:
    """Apply each poll as one batch, as the Kafka loop does; the outcomes of each."""
    offset = 0
    found = []
    for poll in polls:
        records = []
        for event in poll:
            records.append(Record(event.to_json().encode(), offset))
            offset += 1
        found.append([(o.status, o.event_id) for o in ledger.handle_batch(records)])
    return found


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_poll_booked_as_a_set_gives_the_books_of_the_per_event_path(
    engines: tuple[Engine, Engine],
    kafka_bootstrap: str,
    producer: KafkaProducer,
    topic_prefix: str,
    seed: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    as_set, each = engines
    opening, polls = history(seed)
    sets = set_ledger(as_set, kafka_bootstrap, producer, topic_prefix)
    one_by_one = per_event_ledger(each, kafka_bootstrap, producer, topic_prefix)
    feed(sets, [opening])
    feed(one_by_one, [opening])
    for engine in engines:  # one campaign's fund bears the fees its donors do not cover
        with engine.begin() as conn:
            conn.execute(
                update(store.campaigns)
                .where(store.campaigns.c.campaign_id == "c-2")
                .values(fee_policy="campaign")
            )

    with caplog.at_level(logging.WARNING, logger="services.shared.consumer"):
        outcomes = feed(sets, polls)
    assert outcomes == feed(one_by_one, polls)
    assert books(as_set) == books(each)

    # Exactly the polls with a gift that can never be booked were applied again one by one
    # (a refund or dispute refused is dead-lettered from its own savepoint, inside the set).
    fell_back = [r for r in caplog.records if r.getMessage().startswith("a set of")]
    usd_polls = sum(1 for poll in polls if any(e.data["currency"] == "USD" for e in poll))
    assert len(fell_back) == usd_polls < len(polls)
    found = books(as_set)
    assert found["entries"] and found["milestones"] and found["outbox"]
    statuses = {status for poll in outcomes for status, _ in poll}
    assert {"applied", "duplicate", "dead_lettered"} <= statuses


# --- what a set must keep ----------------------------------------------------------------------


def test_a_poison_gift_in_the_middle_of_a_poll_goes_alone_to_dead_letters(
    engine: Engine,
    ledger: IdempotentConsumer,
    topics: Topics,
    consumer_group: str,
    campaign: dict[str, str],
) -> None:
    def of(amount: int, currency: str = "EUR", n: int = 0) -> CloudEvent:
        return gift(
            f"{campaign['id']}-{n}",
            amount,
            currency=currency,
            campaign_id=campaign["id"],
            slug=campaign["slug"],
        )

    good = [of(1350, n=n) for n in range(8)]
    poison = of(1350, "USD", n=99)
    # One poll: four gifts, the poison one, the four others and two redeliveries.
    sent = [*good[:4], poison, *good[4:], good[0], good[5]]
    for event in sent:
        topics.producer.send(
            topics.name(DONATIONS_TOPIC),
            key=campaign["id"].encode(),
            value=event.to_json().encode(),
        )
    topics.producer.flush(timeout=30)
    outcomes = record_outcomes(ledger)

    def lags() -> list[float | None]:
        labels = {"group": consumer_group, "topic": topics.name(DONATIONS_TOPIC)}
        return [
            REGISTRY.get_sample_value(
                "difts_consumer_lag_records", {**labels, "partition": str(partition)}
            )
            for partition in range(PARTITIONS)
        ]

    with running(ledger.run):
        wait_until(lambda: len(outcomes) == 9, "the poll to be applied")
        # Each assigned partition's lag is measured after each poll: none left behind.
        wait_until(
            lambda: any(lag is not None for lag in lags()) and set(lags()) <= {None, 0.0},
            "the consumer's lag to be measured at 0",
        )

    assert outcomes[poison.id] == ["dead_lettered"]
    assert outcomes[good[0].id] == outcomes[good[5].id] == ["applied", "duplicate"]
    assert all(outcomes[event.id][0] == "applied" for event in good)
    dead = read_topic(
        topics.bootstrap, dead_letter_topic(consumer_group, topics.prefix), campaign["id"], 1
    )
    assert [record.value for record in dead] == [poison.to_json().encode()]
    assert "in USD" in dict(dead[0].headers)["reason"].decode()
    found = books(engine)
    totals = [row for row in found["totals"] if row["campaign_id"] == campaign["id"]]
    assert (totals[0]["donations"], totals[0]["donated"], totals[0]["meals_funded"]) == (
        8,
        8 * 1350,
        8,
    )
    booked = [o for o in found["outbox"] if o["event_type"].endswith("meals_funded.v1")]
    # One announcement per gift, in the order of the gifts: 1, 2, ... 8 meals.
    assert [o["payload"]["data"]["meals_funded"] for o in booked] == list(range(1, 9))


def test_redeliveries_inside_one_poll_and_across_polls_are_booked_once(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    first, second, third = (gift(f"d-{n}", 2700) for n in range(3))

    def poll(*events: CloudEvent) -> list[str]:
        records = [Record(event.to_json().encode(), n) for n, event in enumerate(events)]
        return [outcome.status for outcome in ledger.handle_batch(records)]

    assert poll(first, second, first, first) == ["applied", "applied", "duplicate", "duplicate"]
    assert poll(second, third, first, third) == ["duplicate", "applied", "duplicate", "duplicate"]
    # The same payment announced again under another event id is not counted again.
    assert poll(replace(third, id=str(uuid.uuid4()))) == ["applied"]
    found = books(engine)
    assert [row["donations"] for row in found["totals"]] == [3]
    assert len(found["gifts"]) == 3
    assert len([e for e in found["entries"] if e["kind"] == "donation"]) == 3
    assert len(found["processed"]) == 4


def test_a_refund_after_its_gift_in_the_same_poll_is_booked_after_it(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    booked, refunded = gift("d-1", 2700), refund("d-1", "re-1", 1350, 1350)
    later = gift("d-2", 1350)
    records = [Record(e.to_json().encode(), n) for n, e in enumerate([booked, refunded, later])]
    assert [o.status for o in ledger.handle_batch(records)] == ["applied"] * 3

    found = books(engine)
    assert [e["kind"] for e in found["entries"]] == ["donation", "refund", "donation"]
    (totals,) = found["totals"]
    assert (totals["donated"], totals["refunded"], totals["meals_funded"]) == (4050, 1350, 2)
    meals = [
        (o["payload"]["data"]["previous_meals_funded"], o["payload"]["data"]["meals_funded"])
        for o in found["outbox"]
        if o["event_type"].endswith("meals_funded.v1")
    ]
    assert meals == [(0, 2), (2, 1), (1, 2)]


def test_database_trouble_in_a_set_rolls_the_poll_back_and_is_raised_for_a_retry(
    engine: Engine, ledger: IdempotentConsumer, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [gift(f"d-{n}", 2700) for n in range(3)]
    records = [Record(e.to_json().encode(), n) for n, e in enumerate(events)]
    flush = store.BatchJournal.flush

    def connection_lost(self: store.BatchJournal) -> None:
        raise OperationalError("INSERT INTO journal_entries", {}, Exception("connection lost"))

    monkeypatch.setattr(store.BatchJournal, "flush", connection_lost)
    with pytest.raises(OperationalError):
        ledger.handle_batch(records)
    empty = books(engine)
    assert (empty["entries"], empty["processed"], empty["outbox"]) == ([], [], [])

    monkeypatch.setattr(store.BatchJournal, "flush", flush)
    assert [o.status for o in ledger.handle_batch(records)] == ["applied"] * 3
    assert [row["donations"] for row in books(engine)["totals"]] == [3]


def test_a_charge_booked_earlier_in_the_same_poll_refuses_another_donation_of_it(
    engine: Engine, ledger: IdempotentConsumer
) -> None:
    first = gift("d-1", 2700)
    same_charge = gift("d-2", 2700)
    same_charge = replace(same_charge, data={**same_charge.data, "charge_id": "ch_d-1"})
    records = [Record(e.to_json().encode(), n) for n, e in enumerate([first, same_charge])]
    outcomes = ledger.handle_batch(records)
    assert [o.status for o in outcomes] == ["applied", "dead_lettered"]
    assert "booked already for another donation" in (outcomes[1].reason or "")
    assert [row["donation_id"] for row in books(engine)["gifts"]] == ["d-1"]
