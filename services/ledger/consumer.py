"""The ledger's Kafka entrypoint: donation and campaign events, through the idempotent
consumer, to one handler per event type."""

from __future__ import annotations

from kafka import KafkaProducer
from sqlalchemy import Engine

from services.shared.consumer import Handler, IdempotentConsumer
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

from . import handlers, store

HANDLERS: dict[str, Handler] = {
    CAMPAIGN_PUBLISHED: handlers.campaign_published,
    MEAL_PRICE_CHANGED: handlers.meal_price_changed,
    DONATION_SUCCEEDED: handlers.donation_succeeded,
    DONATION_REFUNDED: handlers.donation_refunded,
    DONATION_REFUND_FAILED: handlers.donation_refund_failed,
    DISPUTE_OPENED: handlers.dispute_opened,
    DISPUTE_CLOSED: handlers.dispute_closed,
    PAYOUT_PAID: handlers.payout_paid,
}


def build_consumer(
    engine: Engine, bootstrap_servers: str, group_id: str, dead_letter_producer: KafkaProducer
) -> IdempotentConsumer:
    """The ledger's consumer of `group_id`, applying events to the database of `engine`."""
    return IdempotentConsumer(
        engine=engine,
        processed=store.processed,
        group_id=group_id,
        topics=(DONATIONS_TOPIC, CAMPAIGNS_TOPIC),
        handlers=HANDLERS,
        bootstrap_servers=bootstrap_servers,
        dead_letter_producer=dead_letter_producer,
    )
