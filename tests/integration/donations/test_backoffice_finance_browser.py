"""Finance staff's pages in headless Chromium, the donations app and the REAL ledger app both
served over HTTP on PostgreSQL (stripe-mock behind the ledger): the dashboard draws its two
charts with no CSP violation, the journal pages forward and back to the first page, and a
payout's reconciliation report is used with the keyboard alone (type the payout id, run it,
reach the Re-sync button, confirm, read what was booked and the report again). axe-core
finds no critical or serious violation on any page. Screenshots:
test-output/backoffice-finance/ (reconciliation-report.png is a payout's report)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.donations.backoffice import finance
from services.ledger import views
from tests.support import browser as pages
from tests.support import infra
from tests.support.backoffice import PASSWORD, served
from tests.support.finance_office import OFFICER, SLUG, FinanceOffice, finance_office

pytestmark = pytest.mark.integration

FOLDER = "backoffice-finance"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with pages.chromium() as chromium:
        yield chromium


@pytest.fixture
def office(
    postgres_admin_url: str, database_url: str, stripe_mock_url: str
) -> Iterator[FinanceOffice]:
    with (
        infra.fresh_database(postgres_admin_url, prefix="l") as ledger_url,
        finance_office(
            database_url, ledger_url, stripe_mock_url, public_url="http://127.0.0.1"
        ) as office,
    ):
        yield office


def sign_in(page: Any) -> None:
    """The sign-in form the first finance page answers with, filled with the keyboard."""
    pages.tab_to(page, "input[name=email]")
    page.keyboard.type(OFFICER)
    pages.tab_to(page, "input[name=password]")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")


def test_the_dashboard_journal_and_trial_balance_in_a_browser(
    browser: Any, office: FinanceOffice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(finance, "JOURNAL_PAGE", 5)  # the seeded books hold 17 entries
    with served(office.app) as site:
        page = pages.new_page(browser, locale="en-GB")
        page.goto(f"{site}/backoffice/finance/campaigns/{SLUG}")
        sign_in(page)
        page.wait_for_selector("#summary")
        drawn = page.eval_on_selector_all(
            "figure img", "images => images.map(i => i.complete && i.naturalWidth > 0)"
        )
        assert drawn == [True, True]
        pages.assert_accessible(page)
        pages.screenshot(page, FOLDER, "dashboard")

        page.goto(f"{site}/backoffice/finance/journal")
        assert "Showing 1 to 5." in page.locator("main").inner_text()
        pages.assert_accessible(page)
        pages.screenshot(page, FOLDER, "journal")
        pages.tab_to(page, "a[rel=next]")
        page.keyboard.press("Enter")
        page.wait_for_selector("text=Showing 6 to 10.")
        pages.tab_to(page, "a[rel=next]")
        page.keyboard.press("Enter")
        page.wait_for_selector("text=Showing 11 to 15.")
        pages.assert_accessible(page)
        pages.tab_to(page, "#first-page")
        page.keyboard.press("Enter")
        page.wait_for_selector("text=Showing 1 to 5.")

        page.goto(f"{site}/backoffice/finance/trial-balance?at=2026-02-28")
        assert page.locator("#trial-status").inner_text() == "The books balance."
        pages.assert_accessible(page)
        pages.screenshot(page, FOLDER, "trial-balance")
        page.goto(f"{site}/backoffice/finance/trial-balance?at=2026-02-30")
        assert page.locator("#at-error").is_visible()
        pages.assert_accessible(page)

        page.goto(f"{site}/backoffice/finance/close")
        pages.assert_accessible(page)

        page.goto(f"{site}/backoffice/finance/campaigns/{SLUG}?lang=fr")
        page.wait_for_selector("h2:has-text('Au fil du temps')")
        pages.assert_accessible(page)
        pages.screenshot(page, FOLDER, "dashboard-fr")
        assert not pages.csp_errors(page)
        page.context.close()


def test_a_payout_s_reconciliation_and_its_resync_with_the_keyboard_alone(
    browser: Any, office: FinanceOffice
) -> None:
    with served(office.app) as site:
        page = pages.new_page(browser, locale="en-GB")
        page.goto(f"{site}/backoffice/finance/reconciliation")
        sign_in(page)
        page.wait_for_selector("h1:has-text('Reconciliation with Stripe')")
        pages.assert_accessible(page)
        pages.tab_to(page, "input[name=payout]")
        page.keyboard.type("po_missed")
        page.keyboard.press("Enter")
        page.wait_for_selector("#verdict")
        assert page.locator("#verdict").inner_text() == "NOT BALANCED"
        assert page.locator("#only-in-stripe tbody tr").count() == 1
        pages.assert_accessible(page)
        pages.screenshot(page, FOLDER, "reconciliation-report")

        pages.tab_to(page, "#resync")
        page.keyboard.press("Enter")
        page.wait_for_selector("h1:has-text('Re-sync with Stripe?')")
        with office.ledger_engine.connect() as conn:
            assert views.journal(conn, stripe_id="po_missed", limit=None) == []
        pages.assert_accessible(page)
        pages.screenshot(page, FOLDER, "resync-confirm")
        pages.tab_to(page, "#confirm-resync")
        page.keyboard.press("Enter")
        page.wait_for_selector("#resynced")
        assert "1 movement booked now: po_missed" in page.locator("#resynced").inner_text()
        assert page.locator("#verdict").count() == 1  # the report again
        with office.ledger_engine.connect() as conn:
            assert len(views.journal(conn, stripe_id="po_missed", limit=None)) == 1
        pages.assert_accessible(page)
        pages.screenshot(page, FOLDER, "resynced")
        assert not pages.csp_errors(page)
        page.context.close()
