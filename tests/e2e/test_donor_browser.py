"""A donor in a real browser (Debian's headless Chromium, driven by Playwright): opens the
campaign page, picks 2 meals, pays on the development test checkout page, lands on the
thank-you page, sees the gift confirmed and the campaign's meal counter move. A screenshot of
each step is saved under test-output/donor-browser/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import RunningSystem, log_tail

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "donor-browser"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless; run infra/chromium.sh (make test does) to install it."""
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run `bash infra/chromium.sh` first")
    with playwright_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def meals_shown(page: object) -> int:
    return int(page.get_attribute("#meals-funded", "data-meals"))  # type: ignore[attr-defined]


def test_a_donor_gives_two_meals_in_a_browser_and_sees_the_counter_move(
    system: RunningSystem, browser: object
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale="fr-FR", viewport={"width": 1000, "height": 1400})  # type: ignore[attr-defined]
    page = context.new_page()
    campaign_url = f"{system.url('donations')}/campaigns/petites-cantines"

    page.goto(campaign_url)
    assert "Les Petites Cantines" in page.text_content("body")
    assert "13,50\u00a0€" in page.text_content(".meal-price")
    before = meals_shown(page)
    page.screenshot(path=str(SHOTS / "1-campaign-page.png"), full_page=True)

    page.check('input[name="meals"][value="2"]')
    page.fill('input[name="email"]', "browser.donor@example.org")
    page.fill('input[name="name"]', "Camille")
    page.fill('textarea[name="public_message"]', "Bon appétit à toutes et à tous !")
    page.check('input[name="show_message"]')
    page.screenshot(path=str(SHOTS / "2-two-meals-chosen.png"), full_page=True)
    page.click("#pay")

    page.wait_for_url("**/test-checkout/**")
    assert "27,00\u00a0€" in page.text_content(".amount")
    page.screenshot(path=str(SHOTS / "3-test-checkout.png"), full_page=True)
    page.click("#pay-test")

    page.wait_for_url("**/thanks")
    # The webhook was recorded before the redirect; the donations worker applies it just after,
    # and the page, which says the payment is being confirmed, reloads itself until then.
    page.wait_for_selector('#donation-status[data-status="succeeded"]', timeout=30_000)
    assert "confirmé" in page.text_content("#donation-status")
    page.screenshot(path=str(SHOTS / "4-thank-you-confirmed.png"), full_page=True)

    # The ledger counts the gift and publishes meals_funded; the donations worker keeps it.
    deadline = time.monotonic() + 60
    page.goto(campaign_url)
    while meals_shown(page) < before + 2:
        if time.monotonic() > deadline:
            raise AssertionError(f"the meal counter did not move\n{log_tail(system)}")
        time.sleep(1)
        page.reload()
    assert meals_shown(page) == before + 2
    assert "Bon appétit à toutes et à tous !" in page.text_content(".messages")
    page.screenshot(path=str(SHOTS / "5-meal-counter-moved.png"), full_page=True)
    context.close()
