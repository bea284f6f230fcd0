"""Finance staff's pages on PostgreSQL, with the REAL ledger app served over HTTP (its books
seeded through its own handlers, stripe-mock behind it): every figure on a page is the ledger
API's figure for the same request, formatted by Babel for the page's language; the journal
pages through its cursor and streams the ledger's CSV; a bad day is refused next to its
field, keeping what was typed; reconciliation shows BALANCED or not and re-syncs what only
Stripe has after a confirmation step; a month is closed after one; the finance role only
(403 for a campaign manager, 401 without a session); a ledger that does not answer gives a
503 page saying what to do."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from flask.testing import FlaskClient

from services.donations.backoffice import finance
from services.donations.service_clients import LedgerClient
from services.ledger import views
from services.shared.i18n import format_money, format_number
from services.shared.money import Money
from tests.support import infra
from tests.support.backoffice import csrf_token
from tests.support.finance_office import MANAGER, SLUG, FinanceOffice, finance_office, officer

pytestmark = pytest.mark.integration

PAGES = [
    "/backoffice/finance",
    f"/backoffice/finance/campaigns/{SLUG}",
    "/backoffice/finance/journal",
    "/backoffice/finance/journal.csv",
    "/backoffice/finance/trial-balance",
    "/backoffice/finance/reconciliation",
    "/backoffice/finance/close",
]


@pytest.fixture
def ledger_database_url(postgres_admin_url: str) -> Iterator[str]:
    with infra.fresh_database(postgres_admin_url, prefix="l") as url:
        yield url


@pytest.fixture
def office(
    database_url: str, ledger_database_url: str, stripe_mock_url: str
) -> Iterator[FinanceOffice]:
    with finance_office(database_url, ledger_database_url, stripe_mock_url) as office:
        yield office


@pytest.fixture
def browser(office: FinanceOffice) -> FlaskClient:
    return officer(office)


@pytest.fixture
def ledger(office: FinanceOffice) -> LedgerClient:
    """The ledger's API as the pages ask it, for the figures they must show."""
    return LedgerClient(office.ledger_url, office.ledger_token)


def en(amount: int, currency: str) -> str:
    return format_money(Money(amount, currency.upper()), "en")


def figures(page: str) -> dict[str, str]:
    """The figures a page marks with data-figure, as they read."""
    found = re.findall(r'data-figure="([a-z_]+)">([^<]*)<', page)
    return {name: html.unescape(text) for name, text in found}


def cells(page: str, table_id: str) -> list[list[str]]:
    """The text of each row's cells in the table of that id."""
    body = page.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [
        [
            html.unescape(re.sub(r"<[^>]+>|\s+", " ", cell)).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in rows
    ]


def test_the_dashboard_shows_the_ledger_s_summary_and_history(
    browser: FlaskClient, ledger: LedgerClient
) -> None:
    summary = ledger.summary(SLUG)
    page = browser.get(f"/backoffice/finance/campaigns/{SLUG}?interval=month")
    assert page.status_code == 200, page.text
    money_figures = (
        "donated",
        "fees",
        "net",
        "refunded",
        "disputed",
        "paid_out",
        "fund_balance",
        "remainder",
    )
    expected = {name: en(summary[name], summary["currency"]) for name in money_figures}
    expected["meals_funded"] = format_number(summary["meals_funded"], "en")
    expected["meal_price"] = en(summary["meal_price"], summary["currency"])
    assert figures(page.text) == expected

    history = ledger.history(SLUG, interval="month")
    rows = cells(page.text, "history")
    buckets = history["buckets"]
    assert len(rows) == 1 + len(buckets) + 1  # the header, a row per bucket, the totals
    for row, bucket in zip(rows[1:], buckets, strict=False):
        assert row[1:] == [
            *(
                en(bucket[k], history["currency"])
                for k in (
                    "donated",
                    "fees",
                    "net",
                    "refunded",
                    "disputed",
                    "paid_out",
                    "fund_balance",
                )
            ),
            format_number(bucket["meals_funded"], "en"),
            format_number(bucket["meals_total"], "en"),
        ]
    assert rows[-1][1] == en(summary["donated"], summary["currency"])
    assert rows[-1][-1] == format_number(summary["meals_funded"], "en")
    charts = re.findall(r'<img src="data:image/svg\+xml;base64,[^"]+"[^>]*alt="[^"]+"', page.text)
    assert len(charts) == 2

    french = browser.get(f"/backoffice/finance/campaigns/{SLUG}?lang=fr")
    assert figures(french.text)["donated"] == format_money(
        Money(summary["donated"], summary["currency"]), "fr"
    )
    assert figures(french.text)["donated"].endswith("\xa0€")  # the amount, then the sign


def test_a_bad_interval_is_refused_next_to_its_field(browser: FlaskClient) -> None:
    page = browser.get(f"/backoffice/finance/campaigns/{SLUG}?interval=year")
    assert page.status_code == 422
    assert 'id="interval-error"' in page.text


def test_an_unknown_campaign_is_a_404_page(browser: FlaskClient) -> None:
    page = browser.get("/backoffice/finance/campaigns/no-such-campaign")
    assert page.status_code == 404
    assert "The ledger has no campaign at this address yet." in page.text


def test_the_journal_pages_through_every_entry_with_its_lines_and_stripe_links(
    browser: FlaskClient, office: FinanceOffice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(finance, "JOURNAL_PAGE", 5)  # the seeded books hold 17 entries
    with office.ledger_engine.connect() as conn:
        every = views.journal(conn, limit=None)
    url: str | None = "/backoffice/finance/journal"
    seen: list[int] = []
    pages = 0
    while url:
        page = browser.get(url)
        assert page.status_code == 200
        assert f"{len(every)} entries match." in page.text
        assert f"Showing {len(seen) + 1} to " in page.text
        seen += [int(i) for i in re.findall(r'data-entry="(\d+)"', page.text)]
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        url = html.unescape(found.group(1)) if found else None
        pages += 1
    assert pages == -(-len(every) // 5) and pages > 1
    assert seen == [entry["id"] for entry in every]

    refunds = browser.get("/backoffice/finance/journal?kind=refund&campaign=" + SLUG)
    expected = [e for e in every if e["kind"] == "refund"]
    assert [int(i) for i in re.findall(r'data-entry="(\d+)"', refunds.text)] == [
        e["id"] for e in expected
    ]
    rows = cells(refunds.text, "journal")[1:]
    lines = [line for entry in expected for line in entry["lines"]]
    assert len(rows) == len(lines)
    for row, line in zip(rows, lines, strict=True):
        debit, credit = row[-2], row[-1]
        amount = en(abs(line["amount"]), line["currency"])
        assert (debit, credit) == ((amount, "") if line["amount"] > 0 else ("", amount))
    assert 'href="https://dashboard.stripe.com/test/refunds/re_1"' in refunds.text


def test_the_csv_download_is_the_ledger_s_csv_for_the_same_filters(
    browser: FlaskClient, ledger: LedgerClient
) -> None:
    page = browser.get("/backoffice/finance/journal?kind=refund&since=2026-01-01")
    link = html.unescape(re.search(r'<a href="([^"]+)" download>', page.text).group(1))  # type: ignore[union-attr]
    answer = browser.get(link)
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert answer.data == b"".join(ledger.journal_csv(kind="refund", since=since))
    assert b"refund" in answer.data


def test_a_bad_day_in_the_journal_filters_is_refused_next_to_it_keeping_what_was_typed(
    browser: FlaskClient,
) -> None:
    page = browser.get("/backoffice/finance/journal?since=2026-02-30&account=fund%3A")
    assert page.status_code == 422
    assert 'id="since-error"' in page.text and "Write a day such as 2026-03-31." in page.text
    assert 'value="2026-02-30"' in page.text and 'value="fund:"' in page.text
    assert 'id="journal"' not in page.text
    backwards = browser.get("/backoffice/finance/journal?since=2026-03-01&until=2026-02-01")
    assert backwards.status_code == 422 and 'id="until-error"' in backwards.text


def test_a_cursor_the_ledger_refuses_is_a_422_page_with_its_message(
    browser: FlaskClient,
) -> None:
    page = browser.get("/backoffice/finance/journal?cursor=not-a-cursor")
    assert page.status_code == 422
    assert "The ledger refused the request" in page.text and "Traceback" not in page.text


def test_the_trial_balance_at_a_day_is_the_ledger_s(
    browser: FlaskClient, ledger: LedgerClient
) -> None:
    page = browser.get("/backoffice/finance/trial-balance?at=2026-02-28")
    assert page.status_code == 200
    trial = ledger.trial_balance(at=datetime.combine(date(2026, 2, 28), time.max, UTC))
    rows = cells(page.text, "trial-balance")[1:]
    accounts = trial["accounts"]
    assert [row[1:] for row in rows[: len(accounts)]] == [
        [
            en(a["debit"], a["currency"]),
            en(a["credit"], a["currency"]),
            en(a["balance"], a["currency"]),
        ]
        for a in accounts
    ]
    assert ("The books balance." in page.text) is trial["balanced"]

    today = browser.get("/backoffice/finance/trial-balance")
    now = ledger.trial_balance(at=datetime.combine(datetime.now(UTC).date(), time.max, UTC))
    assert today.status_code == 200
    assert len(cells(today.text, "trial-balance")) == 1 + len(now["accounts"]) + len(now["totals"])
    assert f'value="{datetime.now(UTC).date().isoformat()}"' in today.text
    assert now["accounts"] != accounts  # March's gift is in today's, not February's


def test_a_bad_day_for_the_trial_balance_is_refused_next_to_the_field(
    browser: FlaskClient,
) -> None:
    page = browser.get("/backoffice/finance/trial-balance?at=31%2F02%2F2026")
    assert page.status_code == 422
    assert 'id="at-error"' in page.text and 'aria-invalid="true"' in page.text
    assert 'value="31/02/2026"' in page.text
    assert 'id="trial-balance"' not in page.text


def test_a_payout_s_reconciliation_is_the_ledger_s_report(
    browser: FlaskClient, ledger: LedgerClient
) -> None:
    page = browser.get("/backoffice/finance/reconciliation?payout=po_1")
    report = ledger.reconcile_payout("po_1")
    assert page.status_code == 200
    verdict = "BALANCED" if report["balanced"] else "NOT BALANCED"
    assert re.search(rf'id="verdict">{verdict}<', page.text)
    shown = figures(page.text)
    for name in ("matched", "mismatched", "only_in_stripe", "only_in_ledger"):
        assert shown[name] == format_number(report["summary"][name], "en")
    for currency, total in report["stripe_total"].items():
        assert shown[f"stripe_total_{currency.lower()}"] == en(total, currency)
    for currency, total in report["ledger_total"].items():
        assert shown[f"ledger_total_{currency.lower()}"] == en(total, currency)
    only = cells(page.text, "only-in-stripe")[1:]
    assert [row[0] for row in only] == [m["balance_transaction"] for m in report["only_in_stripe"]]
    assert [row[4] for row in only] == [
        en(m["net"], m["currency"]) for m in report["only_in_stripe"]
    ]
    in_ledger = cells(page.text, "only-in-ledger")[1:]
    assert [row[-1] for row in in_ledger] == [
        en(m["net"], m["currency"]) for m in report["only_in_ledger"]
    ]


def test_resync_asks_for_confirmation_then_books_what_only_stripe_has_once(
    browser: FlaskClient, office: FinanceOffice, ledger: LedgerClient
) -> None:
    report = browser.get("/backoffice/finance/reconciliation?payout=po_missed")
    assert report.status_code == 200 and 'id="resync"' in report.text
    token = csrf_token(report.text.split('id="resync-form"', 1)[1])

    confirm = browser.post(
        "/backoffice/finance/reconciliation/resync",
        data={"csrf_token": token, "payout": "po_missed"},
    )
    assert confirm.status_code == 200 and 'id="confirm-resync"' in confirm.text

    def booked() -> list[Any]:
        with office.ledger_engine.connect() as conn:
            return views.journal(conn, stripe_id="po_missed", limit=None)

    assert booked() == []  # nothing asked of the ledger before the confirmation

    done = browser.post(
        "/backoffice/finance/reconciliation/resync",
        data={"csrf_token": token, "payout": "po_missed", "confirmed": "yes"},
    )
    assert done.status_code == 200
    assert "1 movement booked now:" in done.text and "<code>po_missed</code>" in done.text
    assert 'id="verdict"' in done.text  # the report again, after the re-sync
    assert len(booked()) == 1
    again = browser.post(
        "/backoffice/finance/reconciliation/resync",
        data={"csrf_token": token, "payout": "po_missed", "confirmed": "yes"},
    )
    assert "0 movements booked now:" in again.text and "Booked already:" in again.text
    assert len(booked()) == 1
    assert ledger.reconcile_payout("po_missed")["payout"]["booked"] != 0


def test_resync_without_the_csrf_token_is_refused_and_books_nothing(
    browser: FlaskClient, office: FinanceOffice
) -> None:
    answer = browser.post(
        "/backoffice/finance/reconciliation/resync",
        data={"payout": "po_missed", "confirmed": "yes"},
    )
    assert answer.status_code == 400
    with office.ledger_engine.connect() as conn:
        assert views.journal(conn, stripe_id="po_missed", limit=None) == []


def test_a_period_s_reconciliation_and_bad_scopes(
    browser: FlaskClient, ledger: LedgerClient
) -> None:
    page = browser.get("/backoffice/finance/reconciliation?since=2009-02-01&until=2009-02-28")
    report = ledger.reconcile_period(
        datetime(2009, 2, 1, tzinfo=UTC), datetime(2009, 3, 1, tzinfo=UTC)
    )
    assert page.status_code == 200
    assert figures(page.text)["only_in_stripe"] == str(report["summary"]["only_in_stripe"])
    assert ("NOT BALANCED" in page.text) is not report["balanced"]

    bad = browser.get("/backoffice/finance/reconciliation?payout=tr_123")
    assert bad.status_code == 422 and 'id="payout-error"' in bad.text
    assert 'value="tr_123"' in bad.text and 'id="verdict"' not in bad.text
    half = browser.get("/backoffice/finance/reconciliation?since=2009-02-01")
    assert half.status_code == 422 and 'id="until-error"' in half.text
    both = browser.get("/backoffice/finance/reconciliation?payout=po_1&since=2009-02-01")
    assert both.status_code == 422 and "Give a payout or a period, not both." in both.text


def test_closing_a_month_takes_a_confirmation_and_says_what_the_ledger_answered(
    browser: FlaskClient, ledger: LedgerClient
) -> None:
    form = browser.get("/backoffice/finance/close")
    token = csrf_token(form.text)
    confirm = browser.post(
        "/backoffice/finance/close", data={"csrf_token": token, "month": "2026-03"}
    )
    assert confirm.status_code == 200 and 'id="confirm-close"' in confirm.text
    assert ledger.close_period("2026-02")["already_closed"] is False  # March still open:
    closed = browser.post(
        "/backoffice/finance/close",
        data={"csrf_token": token, "month": "2026-03", "confirmed": "yes"},
    )
    assert "2026-03 is closed" in closed.text
    again = browser.post(
        "/backoffice/finance/close",
        data={"csrf_token": token, "month": "2026-03", "confirmed": "yes"},
    )
    assert "2026-03 was already closed: nothing changed." in again.text
    assert ledger.close_period("2026-03")["already_closed"] is True

    bad = browser.post(
        "/backoffice/finance/close",
        data={"csrf_token": token, "month": "2026-13", "confirmed": "yes"},
    )
    assert bad.status_code == 422 and 'id="month-error"' in bad.text
    assert 'value="2026-13"' in bad.text
    assert ledger.close_period("2026-04")["already_closed"] is False  # nothing closed it


@pytest.mark.parametrize("url", PAGES)
def test_finance_pages_are_for_the_finance_role(office: FinanceOffice, url: str) -> None:
    anonymous = office.app.test_client()
    assert anonymous.get(url).status_code == 401
    manager = officer(office, MANAGER)
    refused = manager.get(url)
    assert refused.status_code == 403
    assert "finance" in refused.text


def test_the_post_actions_are_for_the_finance_role(office: FinanceOffice) -> None:
    manager = officer(office, MANAGER)
    token = csrf_token(manager.get("/backoffice/").text)
    for url, data in (
        ("/backoffice/finance/close", {"month": "2026-03", "confirmed": "yes"}),
        ("/backoffice/finance/reconciliation/resync", {"payout": "po_missed", "confirmed": "yes"}),
    ):
        assert manager.post(url, data={"csrf_token": token, **data}).status_code == 403
    with office.ledger_engine.connect() as conn:
        assert views.journal(conn, stripe_id="po_missed", limit=None) == []


def test_stripe_links_go_to_the_live_dashboard_on_a_live_key(
    database_url: str, ledger_database_url: str, stripe_mock_url: str
) -> None:
    with finance_office(
        database_url, ledger_database_url, stripe_mock_url, stripe_api_key="sk_live_123"
    ) as live:
        page = officer(live).get("/backoffice/finance/journal?kind=refund")
    assert 'href="https://dashboard.stripe.com/refunds/re_1"' in page.text
    assert "dashboard.stripe.com/test/" not in page.text


def test_a_ledger_that_does_not_answer_gives_a_503_page_saying_what_to_do(
    database_url: str, ledger_database_url: str, stripe_mock_url: str
) -> None:
    down = f"http://127.0.0.1:{infra.free_port()}"
    with finance_office(
        database_url, ledger_database_url, stripe_mock_url, ledger_url=down
    ) as office:
        browser = officer(office)
        for url in PAGES[1:]:
            if url.endswith("/close") or url.endswith("/reconciliation"):
                continue  # a form: nothing asked of the ledger yet
            page = browser.get(url)
            assert page.status_code == 503, url
            assert "The ledger service is not answering" in page.text
            assert "Traceback" not in page.text
        report = browser.get("/backoffice/finance/reconciliation?payout=po_1")
        assert report.status_code == 503
        token = csrf_token(browser.get("/backoffice/finance/close").text)
        closing = browser.post(
            "/backoffice/finance/close",
            data={"csrf_token": token, "month": "2026-03", "confirmed": "yes"},
        )
        assert closing.status_code == 503 and "Try again in a minute" in closing.text
