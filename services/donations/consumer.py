"""The Kafka entrypoint: the ledger's events the donation pages show (its count of meals
funded) and what it booked of each dift (meals per allocation, for the impact report), and
notifications' word that a dift's invitation was sent or bounced, through the shared
idempotent consumer (a unit of work per batch: effects and event ids in one transaction,
offsets after)."""

from __future__ import annotations

from sqlalchemy import Engine

from services.shared.consumer import IdempotentConsumer
from services.shared.events import (
    DIFT_BOOKED,
    DIFT_INVITATION_SENT,
    LEDGER_TOPIC,
    MEALS_FUNDED,
    NOTIFICATIONS_TOPIC,
)
from services.shared.kafka import make_producer

from .config import Settings
from .handlers.difts import record_dift_booked, record_invitation_sent
from .handlers.projections import record_meals_funded
from .unit_of_work import DonationsUnitOfWork

TOPICS = (LEDGER_TOPIC, NOTIFICATIONS_TOPIC)
HANDLERS = {
    MEALS_FUNDED: record_meals_funded,
    DIFT_BOOKED: record_dift_booked,
    DIFT_INVITATION_SENT: record_invitation_sent,
}


def build_consumer(
    settings: Settings, engine: Engine, group_id: str | None = None
) -> IdempotentConsumer:
    """The donations consumer of `group_id` (default: the configured group)."""
    return IdempotentConsumer(
        unit_of_work=lambda: DonationsUnitOfWork(engine),
        group_id=group_id or settings.consumer_group,
        topics=TOPICS,
        handlers=dict(HANDLERS),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        dead_letter_producer=make_producer(
            settings.kafka_bootstrap_servers, "donations-dead-letters"
        ),
        topic_prefix=settings.topic_prefix,
    )
