"""The outbox relay on SQLite and PostgreSQL against real Kafka: every row reaches the broker,
each key's (each campaign's) rows in the order they were written, even with two relays
publishing at once on PostgreSQL; and a relay sleeping out a long idle wait is woken by a
commit, in its own process and (PostgreSQL) from another connection."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer
from sqlalchemy import Engine, MetaData, func, select

from services.shared.db import make_engine
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import CAMPAIGN_CLOSED, CAMPAIGNS_TOPIC, topic_name
from services.shared.kafka import ensure_topics, make_producer
from services.shared.outbox import OUTBOX_CHANNEL, OutboxRelay, add_to_outbox, outbox_table
from services.shared.wake import notify_on_insert

pytestmark = pytest.mark.integration

metadata = MetaData()
outbox = outbox_table(metadata)


@pytest.fixture
def engine(any_database: str) -> Iterator[Engine]:
    engine = make_engine(any_database)
    metadata.create_all(engine)
    if engine.dialect.name == "postgresql":
        create, _drop = notify_on_insert("outbox", OUTBOX_CHANNEL)
        with engine.begin() as conn:
            conn.exec_driver_sql(create)
    yield engine
    engine.dispose()


@pytest.fixture
def prefix(kafka_bootstrap: str) -> str:
    prefix = f"relay-{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap, consumer_groups=(), prefix=prefix)
    return prefix


def closed(key: str, n: int) -> CloudEvent:
    return new_event(
        CAMPAIGN_CLOSED,
        "test",
        {"campaign_id": key, "slug": f"n{n}", "closed_at": "2026-01-01T00:00:00Z"},
    )


def write(engine: Engine, keys: list[str], per_key: int) -> dict[str, list[str]]:
    """`per_key` events per key, interleaved, in a few transactions; the ids in order."""
    written: dict[str, list[str]] = defaultdict(list)
    for start in range(0, per_key, 25):
        with engine.begin() as conn:
            for n in range(start, min(start + 25, per_key)):
                for key in keys:
                    event = closed(key, n)
                    add_to_outbox(conn, outbox, CAMPAIGNS_TOPIC, key, event)
                    written[key].append(event.id)
    return written


def read_back(bootstrap: str, prefix: str, expected: int) -> dict[str, list[str]]:
    consumer = KafkaConsumer(
        topic_name(CAMPAIGNS_TOPIC, prefix),
        bootstrap_servers=bootstrap,
        group_id=f"read-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    got: dict[str, list[str]] = defaultdict(list)
    seen = 0
    for record in consumer:
        got[record.key.decode()].append(CloudEvent.from_json(record.value).id)
        seen += 1
        if seen >= expected:
            break
    consumer.close()
    return got


def unpublished(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            ).scalar_one()
        )


def test_every_row_is_published_once_in_each_keys_order(
    engine: Engine, kafka_bootstrap: str, prefix: str
) -> None:
    keys = [f"campaign-{n}" for n in range(8)]
    written = write(engine, keys, per_key=60)
    relays = [
        OutboxRelay(
            engine,
            outbox,
            make_producer(kafka_bootstrap, f"r{n}"),
            batch_size=40,
            topic_prefix=prefix,
        )
        # Two relays publish at once on PostgreSQL (one per worker instance); SQLite has one.
        for n in range(2 if engine.dialect.name == "postgresql" else 1)
    ]
    errors: list[BaseException] = []

    def drain(relay: OutboxRelay) -> None:
        try:
            while unpublished(engine):
                relay.publish_pending()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    threads = [threading.Thread(target=drain, args=(relay,)) for relay in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert unpublished(engine) == 0
    got = read_back(kafka_bootstrap, prefix, expected=len(keys) * 60)
    assert dict(got) == dict(written)  # none lost, none doubled, none reordered within a key
    for relay in relays:
        relay.producer.close()


def test_a_commit_wakes_a_relay_sleeping_out_a_long_idle_wait(
    engine: Engine, kafka_bootstrap: str, prefix: str
) -> None:
    relay = OutboxRelay(
        engine, outbox, make_producer(kafka_bootstrap, "woken"), topic_prefix=prefix
    )
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), kwargs={"idle_wait": 600})
    thread.start()
    try:
        # The relay has found nothing and sleeps (up to ten minutes without a wake-up).
        assert not stop.wait(0.5)
        write(engine, ["same-process"], per_key=1)  # a commit on the relay's own engine
        if engine.dialect.name == "postgresql":
            # ... and one from another connection pool, as another process would.
            other = make_engine(engine.url.render_as_string(hide_password=False))
            write(other, ["other-process"], per_key=1)
            other.dispose()
        deadline = threading.Event()
        for _ in range(200):
            if unpublished(engine) == 0:
                break
            deadline.wait(0.1)
        assert unpublished(engine) == 0, "the relay slept through the commits"
    finally:
        stop.set()
        thread.join(timeout=30)
        relay.producer.close()


def test_the_trigger_notifies_at_commit_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no notifications")
    import psycopg

    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute(f'LISTEN "{OUTBOX_CHANNEL}"')
        with engine.connect() as conn:
            add_to_outbox(conn, outbox, CAMPAIGNS_TOPIC, "k", closed("k", 0))
            assert not list(listener.notifies(timeout=0.3, stop_after=1))  # not yet committed
            conn.commit()
        assert len(list(listener.notifies(timeout=5, stop_after=1))) == 1
