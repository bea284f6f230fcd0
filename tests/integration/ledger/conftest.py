"""Fixtures of the ledger's integration tests: its schema migrated on a fresh PostgreSQL
database, topics of the test's own (a prefix of its own on the shared broker, so a fresh
consumer group reads only this test's history from offset 0), and the helpers that publish
to them and watch what the consumer made of each message."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import Engine

from services.ledger.cli import MIGRATIONS
from services.ledger.consumer import build_consumer
from services.shared.consumer import IdempotentConsumer
from services.shared.db import make_engine, upgrade
from services.shared.envelope import CloudEvent
from services.shared.events import topic_name
from services.shared.kafka import ensure_topics, make_producer
from tests.support.loops import WAIT


def migrated(url: str) -> Engine:
    """An engine on the database at `url`, brought to the ledger's newest schema."""
    upgrade(url, MIGRATIONS)
    return make_engine(url)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The ledger's schema, migrated on a fresh PostgreSQL database."""
    engine = migrated(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def topic_prefix(kafka_bootstrap: str, consumer_group: str) -> str:
    """The prefix of this test's topics (and of its group's dead letters), created."""
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka_bootstrap, consumer_groups=(consumer_group,), prefix=prefix)
    return prefix


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    producer = make_producer(kafka_bootstrap, client_id="test-ledger")
    yield producer
    producer.close(timeout=10)


@pytest.fixture
def ledger(
    engine: Engine,
    kafka_bootstrap: str,
    consumer_group: str,
    producer: KafkaProducer,
    topic_prefix: str,
) -> IdempotentConsumer:
    """The ledger's consumer of this test's group, on this test's topics."""
    return build_consumer(
        engine, kafka_bootstrap, consumer_group, producer, topic_prefix=topic_prefix
    )


@pytest.fixture
def campaign() -> dict[str, str]:
    """A campaign of this test alone."""
    tag = uuid.uuid4().hex[:12]
    return {"id": f"test-{tag}", "slug": f"test-cantines-{tag}"}


class Topics:
    """This test's topics: publish to them by their names in the published language, and
    consume them with groups of the test's own."""

    def __init__(self, producer: KafkaProducer, prefix: str, bootstrap: str) -> None:
        self.producer = producer
        self.prefix = prefix
        self.bootstrap = bootstrap

    def name(self, topic: str) -> str:
        return topic_name(topic, self.prefix)

    def send(self, topic: str, key: str, *values: CloudEvent | bytes) -> None:
        """Publish records in order, each acknowledged by the broker before the next."""
        for value in values:
            raw = value.to_json().encode() if isinstance(value, CloudEvent) else value
            self.producer.send(self.name(topic), key=key.encode(), value=raw).get(timeout=30)

    def consumer(self, engine: Engine, group: str) -> IdempotentConsumer:
        """The ledger's consumer of a new group (with its dead-letter topic) on `engine`."""
        ensure_topics(self.bootstrap, consumer_groups=(group,), prefix=self.prefix)
        return build_consumer(
            engine, self.bootstrap, group, self.producer, topic_prefix=self.prefix
        )


@pytest.fixture
def topics(producer: KafkaProducer, topic_prefix: str, kafka_bootstrap: str) -> Topics:
    return Topics(producer, topic_prefix, kafka_bootstrap)


def record_outcomes(ledger: IdempotentConsumer) -> dict[str | None, list[str]]:
    """Observe what the consumer made of each message, by event id (a poll's records are
    applied together, in one transaction, and reported together)."""
    outcomes: dict[str | None, list[str]] = defaultdict(list)
    handle_batch = ledger.handle_batch

    def recording_batch(messages: list[Any]) -> Any:
        found = handle_batch(messages)
        for outcome in found:
            outcomes[outcome.event_id].append(outcome.status)
        return found

    ledger.handle_batch = recording_batch  # type: ignore[method-assign]
    return outcomes


def read_topic(bootstrap: str, topic: str, key: str, count: int) -> list[Any]:
    """The records of `topic` with `key`, read from the beginning, once `count` are there."""
    reader = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False
    )
    try:
        partitions: set[int] | None = None
        deadline = time.monotonic() + WAIT
        while not partitions:
            partitions = reader.partitions_for_topic(topic)
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {topic} not found")
            time.sleep(0.1)
        assigned = [TopicPartition(topic, partition) for partition in partitions]
        reader.assign(assigned)
        reader.seek_to_beginning(*assigned)
        found: list[Any] = []
        while len(found) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} records keyed {key} in {topic}")
            for records in reader.poll(timeout_ms=500).values():
                found.extend(record for record in records if record.key == key.encode())
        return found
    finally:
        reader.close()
