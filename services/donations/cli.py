"""`python -m services.donations migrate | seed-demo | worker`: bring the database up to date,
create the demo campaign, or run the background loops."""

from __future__ import annotations

import argparse
from pathlib import Path

from services.shared.cli import Command, run_cli
from services.shared.db import make_engine, upgrade
from services.shared.logs import configure_logging

from .config import Settings
from .demo import seed_demo_campaign, seed_demo_difts
from .worker import run_worker

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(_args: argparse.Namespace) -> None:
    """Bring the donations database to the newest schema."""
    upgrade(Settings.from_env().database_url, MIGRATIONS)
    print("donations: database migrated")


def seed_demo(_args: argparse.Namespace) -> None:
    """Create the demo campaign and its news posts, the two canteens, the demo sponsor and its
    programme of difts (idempotent)."""
    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    campaign_id, created = seed_demo_campaign(engine, settings.public_url)
    print(f"donations: demo campaign {'created' if created else 'already there'} ({campaign_id})")
    programme_id, token = seed_demo_difts(engine, settings.public_url)
    print(f"donations: demo programme of difts {programme_id}, five invitations issued")
    if token is not None:
        print(f"donations: the demo sponsor's access token (shown once): {token}")


def worker(_args: argparse.Namespace) -> None:
    """Relay the outbox to Kafka, keep the meals-funded projection from the ledger's events,
    and publish scheduled news posts when due, until stopped."""
    run_worker(Settings.from_env())


COMMANDS: dict[str, tuple[str, Command]] = {
    "migrate": ("apply database migrations", migrate),
    "seed-demo": ("create the demo campaign", seed_demo),
    "worker": ("run the outbox relay, meals consumer, scheduled posts", worker),
}


def main() -> None:
    """The donations command line: one of COMMANDS."""
    configure_logging("donations")
    run_cli("donations", COMMANDS)
