"""The Kafka entrypoint: donation, campaign, ledger and programme (company dift) events into
the handlers, through the
shared idempotent consumer (a unit of work per batch: effects and event ids in one
transaction, offsets after)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from services.shared.consumer import IdempotentConsumer
from services.shared.events import (
    CAMPAIGNS_TOPIC,
    DONATIONS_TOPIC,
    LEDGER_TOPIC,
    PROGRAMMES_TOPIC,
)
from services.shared.kafka import make_producer

from .config import Settings
from .consent import ConsentKeys
from .domain import ImpactBudget, ReminderRule
from .handlers import Stationery, event_handlers
from .messages import Letterhead
from .unit_of_work import NotificationsUnitOfWork

TOPICS = (DONATIONS_TOPIC, CAMPAIGNS_TOPIC, LEDGER_TOPIC, PROGRAMMES_TOPIC)


def stationery(settings: Settings) -> Stationery:
    """How the service's emails are written: who they come from, where their links point,
    the keys of unsubscribe links, the impact budget, when a dift's reminder goes."""
    return Stationery(
        Letterhead.from_settings(
            settings.mail_from,
            settings.donations_public_url,
            settings.mail_timezone,
            settings.public_url,
        ),
        ConsentKeys(settings.signing_secret),
        ImpactBudget(timedelta(seconds=settings.impact_period)),
        reminders=ReminderRule(timedelta(days=settings.reminder_days)),
    )


def build_consumer(
    settings: Settings, engine: Engine, group_id: str | None = None
) -> IdempotentConsumer:
    """The notifications consumer of `group_id` (default: the configured group)."""
    group = group_id or settings.consumer_group
    return IdempotentConsumer(
        unit_of_work=lambda: NotificationsUnitOfWork(engine),
        group_id=group,
        topics=TOPICS,
        handlers=event_handlers(stationery(settings)),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        dead_letter_producer=make_producer(
            settings.kafka_bootstrap_servers, f"{group}-dead-letters"
        ),
        topic_prefix=settings.topic_prefix,
    )
