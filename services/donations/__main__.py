"""`python -m services.donations migrate | seed-demo | worker`."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.shared.cli import run_cli
from services.shared.db import make_engine, upgrade
from services.shared.kafka import ensure_topics, make_producer
from services.shared.logs import configure_logging
from services.shared.outbox import OutboxRelay
from services.shared.worker import run_loops

from . import store
from .config import Settings
from .demo import seed_demo_campaign

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(_args: argparse.Namespace) -> None:
    """Bring the donations database to the newest schema."""
    upgrade(Settings.from_env().database_url, MIGRATIONS)
    print("donations: database migrated")


def seed_demo(_args: argparse.Namespace) -> None:
    """Create the demo campaign (idempotent)."""
    campaign_id, created = seed_demo_campaign(make_engine(Settings.from_env().database_url))
    print(f"donations: demo campaign {'created' if created else 'already there'} ({campaign_id})")


def worker(_args: argparse.Namespace) -> None:
    """Relay the outbox to Kafka until stopped."""
    settings = Settings.from_env()
    ensure_topics(settings.kafka_bootstrap_servers)
    relay = OutboxRelay(
        make_engine(settings.database_url),
        store.outbox,
        make_producer(settings.kafka_bootstrap_servers, "donations-relay"),
    )
    run_loops({"outbox-relay": relay.run})


if __name__ == "__main__":
    configure_logging("donations")
    run_cli(
        "donations",
        {
            "migrate": ("apply database migrations", migrate),
            "seed-demo": ("create the demo campaign", seed_demo),
            "worker": ("run the outbox relay", worker),
        },
    )
