"""The ledger's Kafka entrypoint: donation, campaign and programme events, through the shared
idempotent consumer (a unit of work per batch: effects and event ids in one transaction,
offsets after), to one handler per event type."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer
from sqlalchemy import Engine

from services.shared.consumer import IdempotentConsumer
from services.shared.events import (
    CAMPAIGNS_TOPIC,
    DONATION_SUCCEEDED,
    DONATIONS_TOPIC,
    PROGRAMMES_TOPIC,
)

from . import handlers
from .config import Settings
from .handlers import EVENT_HANDLERS
from .stripe_balance import BalanceTransactions, Progress
from .unit_of_work import LedgerUnitOfWork

TOPICS = (DONATIONS_TOPIC, CAMPAIGNS_TOPIC, PROGRAMMES_TOPIC)


def build_consumer(
    engine: Engine,
    bootstrap_servers: str,
    group_id: str,
    dead_letter_producer: KafkaProducer,
    topic_prefix: str = "",
) -> IdempotentConsumer:
    """The ledger's consumer of `group_id`, applying events to the database of `engine`."""
    return IdempotentConsumer(
        unit_of_work=lambda: LedgerUnitOfWork(engine),
        group_id=group_id,
        topics=TOPICS,
        handlers=EVENT_HANDLERS,
        bootstrap_servers=bootstrap_servers,
        dead_letter_producer=dead_letter_producer,
        topic_prefix=topic_prefix,
        # A poll's confirmed gifts are booked as a set (LedgerUnitOfWork.batch); the rarer
        # events (refunds, disputes, campaigns, payouts, programmes and their difts) each in
        # a savepoint of its own, after what the set holds back is written.
        set_types=(DONATION_SUCCEEDED,),
    )


def resync(
    settings: Settings, engine: Engine, asked: handlers.Resync, progress: Progress | None = None
) -> dict[str, Any]:
    """Book what Stripe moved and the ledger missed (handlers.resync), each rebuilt event
    applied through this consumer's idempotent path like one read from Kafka: running it
    twice books nothing twice. What the CLI's `resync` and the finance API's re-sync do."""
    # apply() never dead-letters by itself (re-sync reports what it could not book), and
    # never reads Kafka: no producer, no connection.
    consumer = build_consumer(engine, settings.kafka_bootstrap_servers, "ledger-resync", None)
    return handlers.resync(
        asked,
        lambda: LedgerUnitOfWork(engine),
        BalanceTransactions.of(settings),
        book=lambda event: consumer.apply(event.to_json().encode()),
        progress=progress,
    )
