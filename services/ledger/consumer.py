"""The ledger's Kafka entrypoint: donation and campaign events, through the idempotent
consumer, to one handler per event type."""

from __future__ import annotations

from kafka import KafkaProducer
from sqlalchemy import Engine

from services.shared.consumer import Handler, IdempotentConsumer, on_connection
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    CAMPAIGNS_TOPIC,
    DISPUTE_CLOSED,
    DISPUTE_OPENED,
    DONATION_REFUND_FAILED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    DONATIONS_TOPIC,
    MEAL_PRICE_CHANGED,
    PAYOUT_PAID,
)

from . import handlers
from .unit_of_work import LedgerUnitOfWork

HANDLERS: dict[str, Handler] = {
    CAMPAIGN_PUBLISHED: on_connection(handlers.campaign_published),
    MEAL_PRICE_CHANGED: on_connection(handlers.meal_price_changed),
    DONATION_SUCCEEDED: on_connection(handlers.donation_succeeded),
    DONATION_REFUNDED: on_connection(handlers.donation_refunded),
    DONATION_REFUND_FAILED: on_connection(handlers.donation_refund_failed),
    DISPUTE_OPENED: on_connection(handlers.dispute_opened),
    DISPUTE_CLOSED: on_connection(handlers.dispute_closed),
    PAYOUT_PAID: on_connection(handlers.payout_paid),
}


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
        topics=(DONATIONS_TOPIC, CAMPAIGNS_TOPIC),
        handlers=HANDLERS,
        bootstrap_servers=bootstrap_servers,
        dead_letter_producer=dead_letter_producer,
        topic_prefix=topic_prefix,
    )
