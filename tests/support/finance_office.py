"""The finance pages' world for tests: the donations app with a finance officer, a campaign
manager and the ledger's campaign on one PostgreSQL database, and the REAL ledger app served
over HTTP in a thread on another, its books seeded as the ledger's own tests seed them (real
handlers: test_history.book) and stripe-mock behind it for reconciliation and re-sync."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from services.donations.app import create_app
from services.ledger.app import create_app as ledger_app
from services.ledger.config import Settings as LedgerSettings
from services.shared.db import make_engine, upgrade
from services.shared.money import Money
from tests.integration.ledger.conftest import migrated
from tests.integration.ledger.test_history import book
from tests.support.backoffice import add_account, served, sign_in
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings, publish_campaign
from tests.unit.ledger.conftest import SLUG

FINANCE_TOKEN = "finance-office-token"  # noqa: S105
TOKENS = f"{FINANCE_TOKEN}:finance,finance-office-admin:admin"
OFFICER = "books@example.org"
MANAGER = "manager@example.org"

__all__ = ["SLUG", "FinanceOffice", "finance_office", "officer"]


@dataclass
class FinanceOffice:
    app: Flask
    engine: Engine
    ledger_engine: Engine
    ledger_url: str
    ledger_token: str


@contextmanager
def finance_office(
    database_url: str,
    ledger_database_url: str,
    stripe_mock_url: str,
    ledger_url: str | None = None,
    stripe_api_key: str = "sk_test_123",
    public_url: str = "http://donations.test",
) -> Iterator[FinanceOffice]:
    """The world above; `ledger_url` points the donations app elsewhere (a ledger that does
    not answer) while the real one still runs; `public_url` http://127.0.0.1 for a browser
    (its session cookie is then not Secure)."""
    upgrade(database_url, DONATIONS_MIGRATIONS)
    engine = make_engine(database_url)
    ledger_engine = migrated(ledger_database_url)
    book(ledger_engine)
    add_account(engine, OFFICER, "finance", name="Dominique Books")
    add_account(engine, MANAGER, "admin", name="Camille Manager")
    publish_campaign(
        engine,
        slug=SLUG,
        meal_price=Money(1350, "EUR"),
        title="Les Petites Cantines",
        cause="Les Petites Cantines",
        summary="Des repas à prix libre",
    )
    settings = LedgerSettings(
        ledger_database_url,
        "127.0.0.1:1",
        "ledger",
        api_tokens=TOKENS,
        stripe_api_base=stripe_mock_url,
    )
    try:
        with served(ledger_app(settings)) as url:
            app = create_app(
                donations_settings(
                    database_url,
                    stripe_mock_url,
                    stripe_api_key=stripe_api_key,
                    public_url=public_url,
                    ledger_url=ledger_url or url,
                    ledger_token=FINANCE_TOKEN,
                )
            )
            yield FinanceOffice(app, engine, ledger_engine, url, FINANCE_TOKEN)
    finally:
        engine.dispose()
        ledger_engine.dispose()


def officer(office: FinanceOffice, email: str = OFFICER) -> FlaskClient:
    """A browser signed in as `email`, preferring English."""
    client = office.app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    assert sign_in(client, email).status_code == 303
    return client
