"""Signing in to the back office in a real browser with the keyboard alone: Tab to each field,
type, Enter; a wrong password shows its message and keeps the email; the right one opens the
home page; signing out by keyboard too. axe-core finds no critical or serious violation on
any of these pages, in French and in English. Screenshots: test-output/backoffice/."""

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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with pages.chromium() as chromium:
        yield chromium


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'backoffice.db'}"
    upgrade(url, DONATIONS_MIGRATIONS)
    engine = make_engine(url)
    add_account(engine, "manager@example.org", "admin", "finance", name="Camille Manager")
    app = create_app(donations_settings(url, "http://127.0.0.1:9", public_url="http://127.0.0.1"))
    with served(app) as base:
        yield base
    engine.dispose()


@pytest.mark.parametrize("locale", ["fr-FR", "en-GB"])
def test_sign_in_and_out_with_the_keyboard_alone(browser: Any, site: str, locale: str) -> None:
    page = pages.new_page(browser, locale=locale)
    lang = locale[:2]
    page.goto(f"{site}/backoffice/")
    assert page.locator("html").get_attribute("lang") == lang
    heading = {"fr": "Se connecter au back-office", "en": "Sign in to the back office"}[lang]
    assert page.locator("h1").inner_text() == heading
    pages.assert_accessible(page)
    pages.screenshot(page, "backoffice", f"sign-in-{lang}")

    pages.tab_to(page, "input[name=email]")
    page.keyboard.type("manager@example.org")
    pages.tab_to(page, "input[name=password]")
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    page.wait_for_selector("#sign-in-problem")
    assert page.input_value("input[name=email]") == "manager@example.org"
    pages.assert_accessible(page)
    pages.screenshot(page, "backoffice", f"sign-in-refused-{lang}")

    pages.tab_to(page, "input[name=password]")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("h1:has-text('Camille Manager')")
    assert page.url.endswith("/backoffice/")
    pages.assert_accessible(page)
    pages.screenshot(page, "backoffice", f"home-{lang}")

    pages.tab_to(page, "header form button")
    page.keyboard.press("Enter")
    page.wait_for_selector("input[name=password]")
    assert page.locator(".flash").count() == 1
    assert not pages.csp_errors(page)
    page.goto(f"{site}/backoffice/")
    assert page.locator("input[name=password]").count() == 1
    page.context.close()


def test_the_chosen_language_is_kept_from_page_to_page(browser: Any, site: str) -> None:
    page = pages.new_page(browser, locale="fr-FR")
    page.goto(f"{site}/backoffice/sign-in?lang=en")
    assert page.locator("h1").inner_text() == "Sign in to the back office"
    page.fill("input[name=email]", "manager@example.org")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Hello, Camille Manager')")
    assert page.locator("html").get_attribute("lang") == "en"
    page.click("text=Français")
    page.wait_for_selector("h1:has-text('Bonjour, Camille Manager')")
    page.goto(f"{site}/backoffice/")
    assert page.locator("html").get_attribute("lang") == "fr"
    page.context.close()
