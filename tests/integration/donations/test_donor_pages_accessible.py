"""Every donor page in headless Chromium, in French and in English, audited by axe-core (no
critical or serious violation) and kept within the content security policy: the campaign page
(and its form answered with errors), the test checkout, the thank-you and cancel pages, a news
post, the list of campaigns; the dift pages (code entry and a wrong code, the choice and a wrong
split, the confirmation, the thank-you page, a dift that cannot be found) and the impact report
and its refusal. The donations app is served over HTTP on SQLite with stripe-mock; screenshots
go to test-output/donor-pages/."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from services.donations.app import create_app
from services.donations.demo import SLUG, seed_demo_campaign
from services.donations.domain.programmes import Recipient
from services.donations.handlers import difts
from services.donations.handlers.webhooks import apply_received_events
from services.donations.impact_report import report_url
from services.donations.unit_of_work import DonationsUnitOfWork
from services.shared.db import make_engine, upgrade
from tests.support import infra
from tests.support.browser import assert_accessible, chromium, csp_errors, new_page, screenshot
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings
from tests.support.programmes import funded_open_programme

pytestmark = pytest.mark.integration

FOLDER = "donor-pages"
LOCALES = {"fr": "fr-FR", "en": "en-GB"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def site(tmp_path: Path, stripe_mock_url: str) -> Iterator[dict[str, Any]]:
    """The donations app over HTTP on SQLite (stripe-mock for Checkout, the test checkout in
    Stripe's place) with the demo campaign and its news, and an open programme with two difts
    sent (one to direct, one for the code page)."""
    url = f"sqlite:///{tmp_path / 'donor-pages.db'}"
    upgrade(url, DONATIONS_MIGRATIONS)
    engine = make_engine(url)
    port = infra.free_port()
    public = f"http://127.0.0.1:{port}"
    seed_demo_campaign(engine, public)
    programme, _token, _shortlist = funded_open_programme(engine, budget=10_000)
    with DonationsUnitOfWork(engine) as uow:
        issued = difts.issue_dift(
            difts.IssueDift(
                programme.id, public, recipient=Recipient("camille@example.org", "Camille")
            ),
            uow,
        )
    settings = donations_settings(url, stripe_mock_url, public_url=public, test_checkout=True)
    app = create_app(settings)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {
        "base": public,
        "settings": settings,
        "programme": programme,
        "link": issued.redeem_url,
        "service": app.extensions["donations"],
    }
    server.shutdown()
    thread.join(timeout=10)
    engine.dispose()


def audited(page: Any, name: str) -> None:
    """axe-core on the page as it is, its screenshot, and no policy broken so far."""
    assert_accessible(page)
    screenshot(page, FOLDER, name)
    assert csp_errors(page) == []


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_donor_pages_are_accessible_in_both_languages(
    site: dict[str, Any], browser: Any, lang: str
) -> None:
    page = new_page(browser, locale=LOCALES[lang])
    base = site["base"]
    page.goto(f"{base}/")
    assert page.get_attribute("html", "lang") == lang
    audited(page, f"{lang}-index")

    page.goto(f"{base}/campaigns/{SLUG}")
    audited(page, f"{lang}-campaign")

    page.check('input[name="meals"][value="custom"]')
    page.fill('input[name="custom_amount"]', "0,01")
    page.fill('input[name="email"]', "ada@example.org")
    page.click("#pay")
    assert page.is_visible(".errors") and page.is_visible("#amount-error")
    assert page.get_attribute('input[name="custom_amount"]', "aria-describedby") == "amount-error"
    assert page.input_value('input[name="email"]') == "ada@example.org"
    audited(page, f"{lang}-campaign-errors")

    page.check('input[name="meals"][value="2"]')
    page.click("#pay")
    page.wait_for_url("**/test-checkout/**")
    audited(page, f"{lang}-test-checkout")
    page.click("#pay-test")
    page.wait_for_url("**/thanks")
    assert page.get_attribute("#donation-status", "data-status") == "pending"
    audited(page, f"{lang}-thanks-pending")
    # The worker applies Stripe's event; the page shows it without being reloaded.
    page.evaluate("() => { window.notReloaded = true; }")
    service = site["service"]
    apply_received_events(DonationsUnitOfWork(service.engine), service.payments)
    page.wait_for_selector('#donation-status[data-status="succeeded"]', timeout=15_000)
    assert page.evaluate("() => window.notReloaded === true")
    audited(page, f"{lang}-thanks")

    page.goto(f"{base}/campaigns/{SLUG}")
    page.fill('input[name="email"]', "ada@example.org")
    page.click("#pay")
    page.wait_for_url("**/test-checkout/**")
    page.click("#cancel-test")
    page.wait_for_url("**/canceled")
    audited(page, f"{lang}-left-payment")
    page.click("#cancel-donation")
    page.wait_for_url("**/canceled")
    assert page.get_attribute("#donation-status", "data-status") == "canceled"
    audited(page, f"{lang}-canceled")

    page.goto(f"{base}/campaigns/{SLUG}")
    page.click(".news article a >> nth=0")
    page.wait_for_url("**/news/**")
    audited(page, f"{lang}-news-post")
    page.context.close()


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_dift_pages_and_the_impact_report_are_accessible(
    site: dict[str, Any], browser: Any, lang: str
) -> None:
    page = new_page(browser, locale=LOCALES[lang])
    base = site["base"]
    page.goto(f"{base}/difts/code")
    audited(page, f"{lang}-dift-code")
    page.fill("#code", "AAAA-BBBB-CCC")
    page.click("#open-code")
    assert page.is_visible("#code-error")
    audited(page, f"{lang}-dift-code-wrong")

    page.goto(f"{base}/difts/{'x' * 30}")
    assert page.get_attribute("#dift-problem", "data-kind") == "unknown"
    audited(page, f"{lang}-dift-problem")

    page.goto(site["link"])
    audited(page, f"{lang}-dift-choose")
    shares = page.locator("#split input[type=text]")
    page.check("#choice-split")
    for index, typed in enumerate(("10", "5", "4")):
        shares.nth(index).fill(typed)
    page.click("#continue")
    assert page.is_visible("#shares-error")
    audited(page, f"{lang}-dift-choose-errors")
    shares.nth(2).fill("5")
    page.click("#continue")
    audited(page, f"{lang}-dift-confirm")
    page.click("#confirm")
    page.wait_for_url("**/thanks")
    audited(page, f"{lang}-dift-thanks")

    expires = datetime.now(UTC) + timedelta(days=30)
    page.goto(report_url(site["settings"], site["programme"].id, expires))
    audited(page, f"{lang}-impact-report")
    page.goto(f"{base}/programmes/{site['programme'].id}/report?access=forged")
    assert page.get_attribute("#report-refused", "data-kind") == "link_refused"
    audited(page, f"{lang}-impact-refused")
    page.context.close()


def test_the_campaign_page_speaks_french_or_english_with_the_formats_of_each(
    site: dict[str, Any], browser: Any
) -> None:
    french = new_page(browser, locale="fr-FR")
    french.goto(f"{site['base']}/campaigns/{SLUG}")
    assert french.get_attribute("html", "lang") == "fr"
    assert french.text_content(".meal-price") == "13,50\u00a0€ financent un repas"
    assert french.text_content(".give h2") == "Donner"
    assert "Publié le " in french.text_content(".news .date")
    english = new_page(browser, locale="en-GB")
    english.goto(f"{site['base']}/campaigns/{SLUG}")
    assert english.get_attribute("html", "lang") == "en"
    assert english.text_content(".meal-price") == "€13.50 funds one meal"
    assert english.text_content(".give h2") == "Give"
    assert "Published on " in english.text_content(".news .date")
    # The language switch: the French reader asks for English, and the next page keeps it.
    french.click('header nav a[hreflang="en"]')
    assert french.get_attribute("html", "lang") == "en"
    french.goto(f"{site['base']}/")
    assert french.get_attribute("html", "lang") == "en"
    french.context.close()
    english.context.close()
