"""The donations service's clients of the ledger and notifications APIs (service_clients.py)
against the real apps served over HTTP in a thread, on PostgreSQL with stripe-mock behind
the ledger: every call answers what the ledger's own views say, refusals come back with their
fields, and a service that does not answer is ServiceUnavailable."""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import Engine
from werkzeug.serving import make_server

from services.donations.service_clients import (
    LedgerClient,
    NotificationsClient,
    ServiceRefused,
    ServiceUnavailable,
)
from services.ledger import views
from services.ledger.app import create_app as ledger_app
from services.ledger.config import Settings as LedgerSettings
from services.notifications.app import create_app as notifications_app
from services.notifications.cli import MIGRATIONS as NOTIFICATIONS_MIGRATIONS
from services.notifications.config import Settings as NotificationsSettings
from services.shared.db import upgrade
from tests.integration.ledger.conftest import migrated
from tests.integration.ledger.test_history import book
from tests.support import infra
from tests.unit.ledger.conftest import SLUG

pytestmark = pytest.mark.integration

FINANCE_TOKEN = "clients-finance-token"  # noqa: S105
ADMIN_TOKEN = "clients-admin-token"  # noqa: S105
TOKENS = f"{FINANCE_TOKEN}:finance,{ADMIN_TOKEN}:admin"


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """`app` over HTTP on a free port of 127.0.0.1, in a thread; its base URL."""
    port = infra.free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def books(database_url: str) -> Iterator[Engine]:
    """The ledger's schema with test_history's campaign booked: gifts, refunds, disputes, a
    payout, a dift and a meal price change."""
    engine = migrated(database_url)
    book(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(books: Engine, database_url: str, stripe_mock_url: str) -> Iterator[LedgerClient]:
    settings = LedgerSettings(
        database_url, "127.0.0.1:1", "ledger", api_tokens=TOKENS, stripe_api_base=stripe_mock_url
    )
    with served(ledger_app(settings)) as url:
        yield LedgerClient(url, FINANCE_TOKEN)


def test_the_summary_and_the_history_are_the_ledger_s_figures(
    ledger: LedgerClient, books: Engine
) -> None:
    with books.connect() as conn:
        expected = views.campaign_finance_summary(conn, SLUG)
    assert expected is not None

    assert ledger.summary(SLUG) == expected
    history = ledger.history(
        SLUG,
        interval="month",
        since=datetime(2026, 1, 1, tzinfo=UTC),
        until=datetime(2026, 4, 1, tzinfo=UTC),
    )
    assert [b["starts_at"][:7] for b in history["buckets"]] == ["2026-01", "2026-02", "2026-03"]
    assert history["totals"]["donated"] == expected["donated"]
    assert history["totals"]["meals_total"] == expected["meals_funded"]
    assert history["totals"]["fund_balance"] == expected["fund_balance"]


def test_the_journal_pages_with_its_cursor_and_streams_as_csv(
    ledger: LedgerClient, books: Engine
) -> None:
    with books.connect() as conn:
        every = views.journal(conn, limit=None)
    seen: list[int] = []
    cursor = None
    while True:
        page = ledger.journal_page(cursor=cursor, limit=4)
        assert page["total"] == len(every)
        seen += [entry["id"] for entry in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [entry["id"] for entry in every]

    refunds = ledger.journal_page(kind="refund", campaign=SLUG)
    assert {entry["stripe_object_id"] for entry in refunds["entries"]} == {"re_1", "re_2"}
    text = b"".join(ledger.journal_csv(kind="refund")).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))
    assert len(rows) == sum(len(entry["lines"]) for entry in refunds["entries"])
    assert {row["kind"] for row in rows} == {"refund"}


def test_the_trial_balance_reconciliation_resync_and_period_close_go_through(
    ledger: LedgerClient,
) -> None:
    trial = ledger.trial_balance(at=datetime(2026, 2, 28, tzinfo=UTC))
    assert trial["balanced"] and trial["accounts"]

    february_2009 = (datetime(2009, 2, 1, tzinfo=UTC), datetime(2009, 3, 1, tzinfo=UTC))
    report = ledger.reconcile_period(*february_2009)
    assert report["balanced"] is False and len(report["only_in_stripe"]) == 1
    paid = ledger.reconcile_payout("po_1")
    assert paid["payout"]["payout_id"] == "po_1"

    first = ledger.resync(payout="po_missed")
    again = ledger.resync(payout="po_missed")
    assert (first["booked"], again["booked"]) == (["po_missed"], [])
    assert again["already_booked"] == ["po_missed"]
    resynced = ledger.resync(since=february_2009[0], until=february_2009[1])
    assert [p["balance_transaction"] for p in resynced["needs_a_person"]] == [
        report["only_in_stripe"][0]["balance_transaction"]
    ]

    assert ledger.close_period("2026-03") == {
        "month": "2026-03",
        "closed": True,
        "already_closed": False,
    }
    assert ledger.close_period("2026-03")["already_closed"] is True


def test_refusals_come_back_with_their_status_message_and_fields(ledger: LedgerClient) -> None:
    with pytest.raises(ServiceRefused) as unknown:
        ledger.summary("nobody")
    assert unknown.value.status == 404 and "nobody" in unknown.value.message

    with pytest.raises(ServiceRefused) as no_scope:
        ledger.resync()
    assert no_scope.value.status == 422 and "since" in no_scope.value.fields

    with pytest.raises(ServiceRefused) as bad_month:
        ledger.close_period("2026-13")
    assert bad_month.value.fields == {"month": ["a period is a month written YYYY-MM"]}

    with pytest.raises(ServiceRefused) as too_many:
        ledger.history(SLUG, interval="day", since=datetime(2020, 1, 1, tzinfo=UTC))
    assert "interval" in too_many.value.fields

    wrong = LedgerClient(ledger.base_url, "not-a-token")
    with pytest.raises(ServiceRefused) as unauthorised:
        wrong.summary(SLUG)
    assert unauthorised.value.status == 401
    admin = LedgerClient(ledger.base_url, ADMIN_TOKEN)
    with pytest.raises(ServiceRefused) as forbidden:
        admin.summary(SLUG)
    assert forbidden.value.status == 403


def test_a_ledger_that_does_not_answer_is_unavailable_and_no_token_is_logged(
    caplog: pytest.LogCaptureFixture, ledger: LedgerClient
) -> None:
    caplog.set_level(logging.DEBUG)
    down = LedgerClient(f"http://127.0.0.1:{infra.free_port()}", FINANCE_TOKEN)

    with pytest.raises(ServiceUnavailable) as unavailable:
        down.summary(SLUG)
    ledger.summary(SLUG)
    with pytest.raises(ServiceRefused):
        ledger.summary("nobody")

    assert unavailable.value.service == "ledger"
    assert FINANCE_TOKEN not in str(unavailable.value) + repr(down)
    assert caplog.records, "the calls are logged"
    assert FINANCE_TOKEN not in caplog.text


@pytest.fixture
def notifications(database_url: str) -> Iterator[NotificationsClient]:
    upgrade(database_url, NOTIFICATIONS_MIGRATIONS)
    settings = replace(
        NotificationsSettings.from_env(), database_url=database_url, api_tokens=TOKENS
    )
    with served(notifications_app(settings)) as url:
        yield NotificationsClient(url, ADMIN_TOKEN)


def test_the_notifications_client_reads_a_post_s_deliveries_and_asks_for_a_resend(
    notifications: NotificationsClient,
) -> None:
    counts = notifications.post_counts("post-nobody-wrote")
    assert {k: counts[k] for k in ("sent", "failed", "skipped", "pending")} == {
        "sent": 0,
        "failed": 0,
        "skipped": 0,
        "pending": 0,
    }
    assert notifications.post_deliveries("post-nobody-wrote") == []
    with pytest.raises(ServiceRefused) as missing:
        notifications.resend("no-such-delivery")
    assert missing.value.status == 404
    finance = NotificationsClient(notifications.base_url, FINANCE_TOKEN)
    with pytest.raises(ServiceRefused) as forbidden:
        finance.post_counts("post-1")
    assert forbidden.value.status == 403
