"""The ledger worker: the Kafka consumer that books events, and the relay that publishes the
ledger's outbox, each in a thread of one process (`python -m services.ledger worker`)."""

from __future__ import annotations

from services.shared.db import make_engine
from services.shared.kafka import ensure_topics, make_producer
from services.shared.outbox import OutboxRelay
from services.shared.worker import run_loops

from . import store
from .config import Settings
from .consumer import build_consumer


def run_worker(settings: Settings) -> None:
    """Consume donation and campaign events and relay the ledger's outbox until SIGTERM."""
    bootstrap = settings.kafka_bootstrap_servers
    ensure_topics(bootstrap, (settings.consumer_group,), prefix=settings.topic_prefix)
    engine = make_engine(settings.database_url)
    # One idempotent producer (thread-safe) serves both the relay and the dead letters.
    producer = make_producer(bootstrap, client_id="ledger")
    relay = OutboxRelay(
        engine, store.outbox, producer, topic_prefix=settings.topic_prefix, service="ledger"
    )
    consumer = build_consumer(
        engine, bootstrap, settings.consumer_group, producer, topic_prefix=settings.topic_prefix
    )
    try:
        run_loops({"outbox-relay": relay.run, "consumer": consumer.run})
    finally:
        producer.close(timeout=10)
        engine.dispose()
