"""`python -m services.donations migrate | seed-demo | worker`: bring the database up to date,
create the demo campaign, or run the background loops."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from services.shared.cli import Command, run_cli
from services.shared.db import make_engine, upgrade
from services.shared.logs import configure_logging

from .config import Settings
from .demo import seed_demo_campaign, seed_demo_difts
from .domain.accounts import ROLES, AccountRefused
from .handlers.accounts import CreateAccount, create_account
from .unit_of_work import DonationsUnitOfWork
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


def _password(args: argparse.Namespace) -> str:
    """From DIFTS_ACCOUNT_PASSWORD (scripts), else asked twice without echo (people)."""
    given = os.environ.get("DIFTS_ACCOUNT_PASSWORD")
    if given:
        return given
    if not sys.stdin.isatty():
        raise SystemExit(
            "create-account: set DIFTS_ACCOUNT_PASSWORD, or run it in a terminal to be asked"
        )
    first = getpass.getpass(f"password for {args.email} (at least 12 characters): ")
    if getpass.getpass("the same password again: ") != first:
        raise SystemExit("create-account: the two passwords differ; nothing was created")
    return first


def create_account_command(args: argparse.Namespace) -> None:
    """Create a back-office account (the first one, or any other)."""
    settings = Settings.from_env()
    roles = frozenset(role.strip() for role in args.role if role.strip())
    name = args.name or args.email
    command = CreateAccount(args.email, name, roles, _password(args), args.sponsor)
    try:
        account = create_account(command, DonationsUnitOfWork(make_engine(settings.database_url)))
    except AccountRefused as refused:
        raise SystemExit(f"create-account: {refused.field}: {refused.message}") from None
    print(
        f"donations: account {account.email} created with the role(s) "
        f"{', '.join(sorted(account.roles))}; sign in at {settings.public_url}/backoffice/"
    )


def _account_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True, help="the email the person signs in with")
    parser.add_argument("--name", default="", help="the name shown in the back office")
    parser.add_argument(
        "--role",
        action="append",
        required=True,
        choices=ROLES,
        help="admin (campaign manager), finance or sponsor; repeat for several",
    )
    parser.add_argument("--sponsor", default=None, help="the sponsor's id, for the sponsor role")


COMMANDS: dict[str, tuple[str, Command]] = {
    "migrate": ("apply database migrations", migrate),
    "seed-demo": ("create the demo campaign", seed_demo),
    "worker": ("run the outbox relay, meals consumer, scheduled posts", worker),
    "create-account": ("create a back-office account (password asked)", create_account_command),
}


def main() -> None:
    """The donations command line: one of COMMANDS."""
    configure_logging("donations")
    run_cli("donations", COMMANDS, arguments={"create-account": _account_arguments})
