"""The notifications worker: the Kafka consumer, the email senders (a transactional lane and a
bulk lane), the round that sends impact emails held for the budget once their period is over,
the round that queues company difts' reminders when due, and the relay that publishes the
service's outbox (dift_invitation_sent), each in a thread of one process
(`python -m services.notifications worker`)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

from sqlalchemy import Engine

from services.shared.db import make_engine
from services.shared.kafka import ensure_topics, make_producer
from services.shared.outbox import OutboxRelay
from services.shared.wake import Wakeup
from services.shared.worker import Loop, run_loops

from . import handlers, store
from .config import Settings
from .consumer import build_consumer, stationery
from .domain import BULK, TRANSACTIONAL, RetryPolicy
from .sender import Lanes, Sender, SmtpRelay
from .store import DELIVERIES_CHANNEL
from .unit_of_work import NotificationsUnitOfWork

log = logging.getLogger(__name__)


def build_sender(settings: Settings, engine: Engine) -> Lanes:
    """The email senders of these settings: transactional mail (receipts, refund
    confirmations) unthrottled, bulk mail (news, impact) at NOTIFICATIONS_SEND_RATE; each
    woken by committed deliveries, polling every NOTIFICATIONS_SEND_POLL seconds besides."""

    def lane(kinds: tuple[str, ...], rate: float) -> Sender:
        return Sender(
            lambda: NotificationsUnitOfWork(engine),
            SmtpRelay.of(settings),
            envelope_from=parseaddr(settings.mail_from)[1],
            policy=RetryPolicy(
                max_attempts=settings.smtp_max_attempts,
                first_delay=timedelta(seconds=settings.retry_first_delay),
            ),
            batch_size=settings.send_batch,
            lease=timedelta(seconds=settings.send_lease),
            idle_wait=settings.send_poll,
            rate=rate,
            kinds=kinds,
            wakeup=lambda: Wakeup(engine, DELIVERIES_CHANNEL, poll=settings.send_poll),
        )

    return Lanes(transactional=lane(TRANSACTIONAL, 0.0), bulk=lane(BULK, settings.send_rate))


def release_held_impact(settings: Settings, engine: Engine) -> Loop:
    """The loop that queues impact emails held for the budget, once a second."""
    writing = stationery(settings)

    def loop(stop: threading.Event) -> None:
        while not stop.wait(1.0):
            try:
                with NotificationsUnitOfWork(engine) as uow:
                    handlers.release_due_impact(uow, writing, datetime.now(UTC))
            except Exception:  # noqa: BLE001 - a database hiccup: try again next second
                log.exception("releasing held impact emails failed")

    return loop


def release_dift_reminders(settings: Settings, engine: Engine) -> Loop:
    """The loop that queues company difts' reminders once they are due, once a second."""
    writing = stationery(settings)

    def loop(stop: threading.Event) -> None:
        while not stop.wait(1.0):
            try:
                with NotificationsUnitOfWork(engine) as uow:
                    handlers.release_due_reminders(uow, writing, datetime.now(UTC))
            except Exception:  # noqa: BLE001 - a database hiccup: try again next second
                log.exception("releasing dift reminders failed")

    return loop


def build_relay(settings: Settings, engine: Engine) -> OutboxRelay:
    """The relay of the service's outbox to Kafka (acks=all), woken by committed events."""
    return OutboxRelay(
        engine,
        store.outbox,
        make_producer(settings.kafka_bootstrap_servers, "notifications-relay"),
        topic_prefix=settings.topic_prefix,
        service="notifications",
    )


def run_worker(settings: Settings) -> None:
    """Consume events into the delivery log, send what it holds and relay the outbox, until
    SIGTERM."""
    ensure_topics(
        settings.kafka_bootstrap_servers,
        consumer_groups=(settings.consumer_group,),
        prefix=settings.topic_prefix,
    )
    engine = make_engine(settings.database_url)
    relay = build_relay(settings, engine)
    try:
        run_loops(
            {
                "outbox-relay": relay.run,
                "consumer": build_consumer(settings, engine).run,
                **build_sender(settings, engine).loops(),
                "held-impact": release_held_impact(settings, engine),
                "dift-reminders": release_dift_reminders(settings, engine),
            }
        )
    finally:
        relay.producer.close(timeout=10)
        engine.dispose()
