"""`python -m services.ledger migrate|worker`: the ledger's database schema and its
background process (outbox relay + event consumer)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from services.shared.cli import run_cli
from services.shared.db import make_engine, upgrade
from services.shared.kafka import ensure_topics, make_producer
from services.shared.logs import configure_logging
from services.shared.outbox import OutboxRelay
from services.shared.worker import run_loops

from . import store
from .config import Settings
from .consumer import build_consumer

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

log = logging.getLogger("services.ledger")


def migrate(_args: argparse.Namespace) -> None:
    """Bring the ledger's database to the newest schema."""
    settings = Settings.from_env()
    upgrade(settings.database_url, MIGRATIONS)
    log.info("ledger database migrated")


def worker(_args: argparse.Namespace) -> None:
    """Consume donation and campaign events and relay the ledger's outbox until stopped."""
    settings = Settings.from_env()
    ensure_topics(settings.kafka_bootstrap_servers, consumer_groups=(settings.consumer_group,))
    engine = make_engine(settings.database_url)
    # One idempotent producer (thread-safe) serves both the relay and the dead letters.
    producer = make_producer(settings.kafka_bootstrap_servers, client_id="ledger")
    relay = OutboxRelay(engine, store.outbox, producer)
    consumer = build_consumer(
        engine, settings.kafka_bootstrap_servers, settings.consumer_group, producer
    )
    try:
        run_loops({"outbox-relay": relay.run, "consumer": consumer.run})
    finally:
        producer.close(timeout=10)
        engine.dispose()


def main() -> None:
    """Entry point of `python -m services.ledger`."""
    configure_logging("ledger")
    run_cli(
        "ledger",
        {
            "migrate": ("create or upgrade the ledger's database schema", migrate),
            "worker": ("consume events and publish the outbox until SIGTERM", worker),
        },
    )


if __name__ == "__main__":
    main()
