"""`python -m services.notifications migrate | worker`: bring the database up to date, or run
the consumer and the email sender."""

from __future__ import annotations

import argparse
import logging
import threading
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path

from sqlalchemy import Engine

from services.shared.cli import run_cli
from services.shared.db import make_engine, upgrade
from services.shared.kafka import ensure_topics
from services.shared.logs import configure_logging
from services.shared.worker import run_loops

from .config import Settings
from .consumer import build_consumer, outbox
from .handlers import release_due_impact, release_overdue_receipts
from .sender import RetryPolicy, Sender, SmtpRelay

MIGRATIONS = Path(__file__).parent / "migrations"

log = logging.getLogger("services.notifications")


def migrate(_args: argparse.Namespace) -> None:
    """Bring the notifications database to the newest schema."""
    settings = Settings.from_env()
    upgrade(settings.database_url, MIGRATIONS)
    log.info("notifications database migrated")


def build_sender(settings: Settings, engine: Engine) -> Sender:
    """The email sender of these settings."""
    relay = SmtpRelay(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
        timeout=settings.smtp_timeout,
    )
    return Sender(
        engine,
        relay,
        envelope_from=parseaddr(settings.mail_from)[1],
        policy=RetryPolicy(
            max_attempts=settings.smtp_max_attempts,
            first_delay=timedelta(seconds=settings.retry_first_delay),
        ),
        batch_size=settings.send_batch,
        lease=timedelta(seconds=settings.send_lease),
        rate=settings.send_rate,
    )


def worker(_args: argparse.Namespace) -> None:
    """Consume events into the delivery log, and send what it holds, until SIGTERM."""
    settings = Settings.from_env()
    ensure_topics(
        settings.kafka_bootstrap_servers,
        consumer_groups=(settings.consumer_group,),
        prefix=settings.topic_prefix,
    )
    engine = make_engine(settings.database_url)
    consumer = build_consumer(settings, engine)
    sender = build_sender(settings, engine)
    writer = outbox(settings)

    def release_receipts(stop: threading.Event) -> None:
        """Queue receipts that waited long enough for the ledger, and impact emails held for
        the budget whose period is over, every second."""
        while not stop.wait(1.0):
            try:
                release_overdue_receipts(engine, writer, datetime.now(UTC))
                release_due_impact(engine, writer, datetime.now(UTC))
            except Exception:  # noqa: BLE001 - a database hiccup: try again next second
                log.exception("releasing held receipts or impact emails failed")

    run_loops({"consumer": consumer.run, "sender": sender.run, "receipts": release_receipts})


def main() -> None:
    """The notifications command line."""
    configure_logging("notifications")
    run_cli(
        "notifications",
        {
            "migrate": ("bring the database to the newest schema", migrate),
            "worker": ("consume events and send emails", worker),
        },
    )


if __name__ == "__main__":
    main()
