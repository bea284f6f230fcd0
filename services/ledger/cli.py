"""`python -m services.ledger <command>`: the ledger's database schema, its background process
(outbox relay + event consumer), and finance staff's reports:

    migrate                                   create or upgrade the schema
    worker                                    consume events, relay the outbox, until SIGTERM
    report [--campaign SLUG] [--at DATE]      trial balance (and a campaign's summary); checks
                                              that every entry balances
    reconcile (--payout PO | --since D --until D)   Stripe balance transactions vs the journal
    resync (--since D --until D | --payout PO)      book what Stripe has and the ledger missed
    close-period YYYY-MM                      close a month to new postings
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime
from pathlib import Path

from services.shared.db import as_utc, make_engine, upgrade
from services.shared.logs import configure_logging

from . import handlers, views
from .config import Settings
from .consumer import resync as resync_books
from .stripe_balance import BalanceTransactions
from .unit_of_work import LedgerUnitOfWork
from .worker import run_worker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

log = logging.getLogger("services.ledger")


def migrate(_args: argparse.Namespace) -> None:
    """Bring the ledger's database to the newest schema."""
    settings = Settings.from_env()
    upgrade(settings.database_url, MIGRATIONS)
    log.info("ledger database migrated")


def worker(_args: argparse.Namespace) -> None:
    """Consume donation and campaign events and relay the ledger's outbox until stopped."""
    run_worker(Settings.from_env())


def _progress(count: int) -> None:
    print(f"... {count} balance transactions read", file=sys.stderr, flush=True)


def _date(text: str) -> datetime:
    """A date or moment given on the command line (UTC unless it says otherwise)."""
    return as_utc(datetime.fromisoformat(text))


def report(args: argparse.Namespace) -> None:
    """Print the trial balance (at a date) and, if asked, a campaign's finance summary; exit 1
    if any entry does not balance."""
    engine = make_engine(Settings.from_env().database_url)
    with engine.connect() as conn:
        trial = views.trial_balance(conn, _date(args.at) if args.at else None)
        broken = views.unbalanced_entries(conn)
        campaign = views.campaign_finance_summary(conn, args.campaign) if args.campaign else None
    if args.json:
        print(json.dumps({"trial_balance": trial, "campaign": campaign}, default=str, indent=2))
    else:
        print(f"Trial balance{' at ' + args.at if args.at else ''}:")
        for row in trial["accounts"]:
            print(f"  {row['currency']} {row['account']:<45} {row['balance']:>14}  {row['name']}")
        for total in trial["totals"]:
            print(f"  {total['currency']} total {total['balance']} (must be 0)")
        if campaign:
            print(f"Campaign {args.campaign}:")
            for key, value in campaign.items():
                print(f"  {key}: {value}")
    print(f"entries that do not balance: {len(broken)}")
    if broken or not trial["balanced"]:
        sys.exit(1)


def reconcile(args: argparse.Namespace) -> None:
    """Reconcile a payout or a period against Stripe; exit 1 unless balanced."""
    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    stripe = BalanceTransactions.of(settings)

    def open_uow() -> LedgerUnitOfWork:
        return LedgerUnitOfWork(engine)

    if args.payout:
        payout = handlers.ReconcilePayout(args.payout)
        found = handlers.reconcile_payout(payout, open_uow, stripe, _progress)
    else:
        period = handlers.ReconcilePeriod(_date(args.since), _date(args.until))
        found = handlers.reconcile_period(period, open_uow, stripe, _progress)
    print(json.dumps(found.to_dict(), indent=2) if args.json else found.to_text())
    if not found.balanced:
        sys.exit(1)


def resync(args: argparse.Namespace) -> None:
    """Book what Stripe moved and the ledger never saw (missed webhooks), through the same
    idempotent path as the consumer."""
    settings = Settings.from_env()
    asked = handlers.Resync(
        since=_date(args.since) if args.since else None,
        until=_date(args.until) if args.until else None,
        payout_id=args.payout,
    )
    outcome = resync_books(settings, make_engine(settings.database_url), asked, _progress)
    print(json.dumps(outcome, indent=2, default=str))


def close_period(args: argparse.Namespace) -> None:
    """Close a month to new postings."""
    engine = make_engine(Settings.from_env().database_url)
    try:
        with LedgerUnitOfWork(engine) as uow:
            newly = handlers.close_period(handlers.ClosePeriod(args.month, args.by), uow)
    except handlers.Refused as error:
        sys.exit(str(error))
    print(f"{args.month} {'closed' if newly else 'was already closed'}")


def main(argv: list[str] | None = None) -> None:
    """The ledger command line (`python -m services.ledger`)."""
    configure_logging("ledger")
    parser = argparse.ArgumentParser(prog="python -m services.ledger")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the ledger's database schema").set_defaults(
        run=migrate
    )
    sub.add_parser(
        "worker", help="consume events and publish the outbox until SIGTERM"
    ).set_defaults(run=worker)
    reporting = sub.add_parser("report", help="trial balance and a campaign's summary")
    reporting.add_argument("--at", help="ISO date: entries effective up to it")
    reporting.add_argument("--campaign", help="a campaign's slug")
    reporting.add_argument("--json", action="store_true")
    reporting.set_defaults(run=report)
    for name, function, text in (
        ("reconcile", reconcile, "Stripe balance transactions against the journal"),
        ("resync", resync, "book what Stripe has and the ledger missed"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--payout", help="a payout id (po_...)")
        command.add_argument("--since", help="ISO date, included")
        command.add_argument("--until", help="ISO date, excluded")
        command.add_argument("--json", action="store_true")
        command.set_defaults(run=function)
    closing = sub.add_parser("close-period", help="close a month (YYYY-MM) to new postings")
    closing.add_argument("month")
    closing.add_argument("--by", default="finance (command line)")
    closing.set_defaults(run=close_period)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if args.command in ("reconcile", "resync") and not (args.payout or (args.since and args.until)):
        parser.error("give --payout, or --since and --until")
    args.run(args)
