"""`python -m services.donations migrate | seed-demo | worker`."""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

from services.shared.cli import run_cli
from services.shared.consumer import IdempotentConsumer, on_connection
from services.shared.db import make_engine, upgrade
from services.shared.events import LEDGER_TOPIC, MEALS_FUNDED
from services.shared.kafka import ensure_topics, make_producer
from services.shared.logs import configure_logging
from services.shared.outbox import OutboxRelay
from services.shared.worker import run_loops

from . import handlers, store
from .config import Settings
from .demo import seed_demo_campaign
from .payments import StripeBalance, StripeCheckout
from .unit_of_work import DonationsUnitOfWork

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(_args: argparse.Namespace) -> None:
    """Bring the donations database to the newest schema."""
    upgrade(Settings.from_env().database_url, MIGRATIONS)
    print("donations: database migrated")


def seed_demo(_args: argparse.Namespace) -> None:
    """Create the demo campaign and its news posts (idempotent)."""
    settings = Settings.from_env()
    campaign_id, created = seed_demo_campaign(
        make_engine(settings.database_url), settings.public_url
    )
    print(f"donations: demo campaign {'created' if created else 'already there'} ({campaign_id})")


def worker(_args: argparse.Namespace) -> None:
    """Relay the outbox to Kafka, keep the meals-funded projection from the ledger's events,
    and publish scheduled news posts when due, until stopped."""
    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    ensure_topics(
        settings.kafka_bootstrap_servers,
        consumer_groups=(settings.consumer_group,),
        prefix=settings.topic_prefix,
    )
    relay = OutboxRelay(
        engine,
        store.outbox,
        make_producer(settings.kafka_bootstrap_servers, "donations-relay"),
        topic_prefix=settings.topic_prefix,
    )
    meals = IdempotentConsumer(
        lambda: DonationsUnitOfWork(engine),
        settings.consumer_group,
        (LEDGER_TOPIC,),
        {MEALS_FUNDED: on_connection(handlers.record_meals_funded)},
        settings.kafka_bootstrap_servers,
        make_producer(settings.kafka_bootstrap_servers, "donations-dead-letters"),
        topic_prefix=settings.topic_prefix,
    )

    balance = StripeBalance(
        StripeCheckout(settings.stripe_api_key, settings.stripe_api_base or None).client
    )

    def scheduled_posts(stop: threading.Event) -> None:
        """Publish news posts when due; retry kept Stripe events."""
        while not stop.is_set():
            try:
                handlers.publish_due_posts(engine, settings.public_url)
                handlers.apply_kept_events(engine, balance)
            except Exception:  # noqa: BLE001 - a database hiccup must not end the loop
                log.exception("scheduled posts or kept stripe events failed; retrying")
            stop.wait(5.0)

    run_loops({"outbox-relay": relay.run, "meals-funded": meals.run, "scheduled": scheduled_posts})


if __name__ == "__main__":
    configure_logging("donations")
    run_cli(
        "donations",
        {
            "migrate": ("apply database migrations", migrate),
            "seed-demo": ("create the demo campaign", seed_demo),
            "worker": ("run the outbox relay, meals consumer, scheduled posts", worker),
        },
    )
