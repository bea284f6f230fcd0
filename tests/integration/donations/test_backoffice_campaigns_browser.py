"""A campaign manager writes and publishes a campaign in a real browser (the app served over
HTTP on SQLite): the list, a new campaign refused with its errors next to the fields and what
was typed kept, the story's preview, the draft saved, the confirmation page, the campaign
live, its meal price page; then the donor page in French and in English shows each
language's texts. axe-core finds no critical or serious violation on any page, no CSP
violation. Screenshots: test-output/backoffice-campaigns/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.donations.app import create_app
from services.shared.db import make_engine, upgrade
from tests.support import browser as pages
from tests.support.backoffice import PASSWORD, add_account, served
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings

pytestmark = pytest.mark.integration

SHOTS = "backoffice-campaigns"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with pages.chromium() as chromium:
        yield chromium


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'campaigns.db'}"
    upgrade(url, DONATIONS_MIGRATIONS)
    engine = make_engine(url)
    add_account(engine, "manager@example.org", "admin", name="Camille Manager")
    app = create_app(donations_settings(url, "http://127.0.0.1:9", public_url="http://127.0.0.1"))
    with served(app) as base:
        yield base
    engine.dispose()


def checked(page: Any, name: str) -> None:
    """The page passes axe-core and breaks no CSP rule; its screenshot is kept."""
    pages.assert_accessible(page)
    assert not pages.csp_errors(page), pages.csp_errors(page)
    pages.screenshot(page, SHOTS, name)


def test_a_campaign_manager_writes_previews_and_publishes_a_campaign(
    browser: Any, site: str
) -> None:
    page = pages.new_page(browser, locale="fr-FR")
    page.goto(f"{site}/backoffice/campaigns")
    page.fill("input[name=email]", "manager@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Campagnes')")
    checked(page, "list-empty")

    page.click("text=Écrire une nouvelle campagne")
    page.wait_for_selector("h1:has-text('Une nouvelle campagne')")
    checked(page, "new")
    page.fill("input[name=slug]", "Cantine Bagnolet")
    page.fill("input[name=cause]", "Les Petites Cantines")
    page.fill("input[name=meal_price]", "13,505")
    page.fill("textarea[name=story_markdown]", "On **cuisine** ensemble.")
    page.fill("input[name=title_en]", "Bagnolet canteen")
    page.fill("textarea[name=story_markdown_en]", "We **cook** together.")
    page.fill("textarea[name=money_uses_en]", "Opening the canteen\nTraining volunteers")
    page.click("button[value=save]")
    page.wait_for_selector("#slug-error")
    assert page.locator("#meal_price-error").count() == 1
    assert page.locator("#title-error").count() == 1
    assert page.input_value("input[name=title_en]") == "Bagnolet canteen"
    assert page.get_attribute("input[name=slug]", "aria-invalid") == "true"
    checked(page, "new-refused")

    page.fill("input[name=slug]", "bagnolet")
    page.fill("input[name=meal_price]", "13,50")
    page.fill("input[name=title]", "Cantine de Bagnolet")
    page.fill("textarea[name=money_uses]", "Ouvrir la cantine\nFormer les bénévoles")
    page.click("button[value=preview]")
    page.wait_for_selector("#preview-fr strong:has-text('cuisine')")
    assert page.locator("#preview-en strong").inner_text() == "cook"
    checked(page, "preview")

    page.click("button[value=save]")
    page.wait_for_selector(".flash")
    assert "brouillon" in page.locator("tr[data-slug=bagnolet]").inner_text()
    checked(page, "list-draft")

    page.click("a[aria-label='Publier Cantine de Bagnolet']")
    page.wait_for_selector("h1:has-text('Publier « Cantine de Bagnolet » ?')")
    checked(page, "publish-confirm")
    pages.tab_to(page, "form.actions button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector(".flash:has-text('en ligne')")
    assert "en ligne" in page.locator("tr[data-slug=bagnolet]").inner_text()
    checked(page, "list-live")

    page.click("a[aria-label='Prix du repas de Cantine de Bagnolet']")
    page.wait_for_selector("h2:has-text('Historique des prix')")
    checked(page, "meal-price")

    page.goto(f"{site}/campaigns/bagnolet?lang=en")
    assert page.locator("h1").inner_text() == "Bagnolet canteen"
    assert page.locator(".story strong").inner_text() == "cook"
    pages.screenshot(page, SHOTS, "donor-page-en")
    page.goto(f"{site}/campaigns/bagnolet?lang=fr")
    assert page.locator("h1").inner_text() == "Cantine de Bagnolet"
    assert page.locator(".money-uses li").all_inner_texts() == [
        "Ouvrir la cantine",
        "Former les bénévoles",
    ]
    pages.screenshot(page, SHOTS, "donor-page-fr")
    page.context.close()
