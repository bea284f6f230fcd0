"""`python -m services.notifications migrate | worker`: bring the database up to date, or run
the consumer and the email sender."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from services.shared.cli import run_cli
from services.shared.db import upgrade
from services.shared.logs import configure_logging

from .config import Settings
from .worker import run_worker

MIGRATIONS = Path(__file__).parent / "migrations"

log = logging.getLogger("services.notifications")


def migrate(_args: argparse.Namespace) -> None:
    """Bring the notifications database to the newest schema."""
    upgrade(Settings.from_env().database_url, MIGRATIONS)
    log.info("notifications database migrated")


def worker(_args: argparse.Namespace) -> None:
    """Consume events and send emails until stopped."""
    run_worker(Settings.from_env())


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
