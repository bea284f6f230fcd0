"""The news editor in headless Chromium with the keyboard alone, the donations app and the
REAL notifications app both served over HTTP on PostgreSQL: sign in, write a post (Tab to
each field and type), watch the live previews follow what is typed, publish it through the
confirmation step, and see its emails' counts. axe-core finds no critical or serious
violation on any page, and no CSP violation is reported. Screenshots:
test-output/backoffice-news/ (editor-preview.png is the editor with both previews)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import browser as pages
from tests.support import infra
from tests.support.backoffice import PASSWORD, served
from tests.support.news_office import MANAGER, SLUG, NewsOffice, news_office

pytestmark = pytest.mark.integration

FOLDER = "backoffice-news"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with pages.chromium() as chromium:
        yield chromium


@pytest.fixture
def office(
    postgres_admin_url: str, database_url: str, stripe_mock_url: str
) -> Iterator[NewsOffice]:
    with (
        infra.fresh_database(postgres_admin_url, prefix="n") as notifications_url,
        news_office(
            database_url, notifications_url, stripe_mock_url, public_url="http://127.0.0.1"
        ) as office,
    ):
        yield office


def test_write_preview_and_publish_a_post_with_the_keyboard_alone(
    browser: Any, office: NewsOffice
) -> None:
    with served(office.app) as site:
        page = pages.new_page(browser, locale="en-GB")
        page.goto(f"{site}/backoffice/news/{SLUG}/new")
        pages.tab_to(page, "input[name=email]")
        page.keyboard.type(MANAGER)
        pages.tab_to(page, "input[name=password]")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_selector("h1:has-text('Write a post')")
        pages.assert_accessible(page)
        pages.screenshot(page, FOLDER, "editor-empty")

        pages.tab_to(page, "input[name=title]")
        page.keyboard.type("Opening of Petites Cantines Bagnolet")
        pages.tab_to(page, "textarea[name=body_markdown]")
        page.keyboard.type("The doors open on **Monday** at noon.")
        page.keyboard.press("Enter")
        page.keyboard.press("Enter")
        page.keyboard.type("Come and cook with us.")
        # The live preview follows: the post's page, as the donor site renders it.
        # (sandboxed, so of no origin: read through Playwright's frame, not contentDocument)
        frame = page.frame_locator("iframe.page-frame")
        frame.locator("text=Come and cook with us.").wait_for(timeout=15_000)
        assert frame.locator("h1").inner_text() == "Opening of Petites Cantines Bagnolet"
        assert frame.locator("strong").inner_text() == "Monday"
        assert page.locator("#preview-status").inner_text() == "The previews show what you typed."
        assert "Opening of Petites Cantines Bagnolet" in page.locator("#email-subject").inner_text()
        email = page.frame_locator("iframe[name=email-frame]")
        email.locator("text=Dear difteurs,").wait_for(timeout=15_000)
        assert pages.focused(page).startswith("textarea")  # typing was never interrupted
        pages.assert_accessible(page)
        page.wait_for_timeout(1500)  # the sandboxed frames paint after their DOM is there
        pages.screenshot(page, FOLDER, "editor-preview")

        pages.tab_to(page, "button[value=publish]")
        page.keyboard.press("Enter")
        page.wait_for_selector("h1:has-text('Publish this post now?')")
        assert office.announced() == []
        pages.assert_accessible(page)
        pages.screenshot(page, FOLDER, "confirm-publish")
        pages.tab_to(page, "button[value=confirm-publish]")
        page.keyboard.press("Enter")
        page.wait_for_selector("h1:has-text('Opening of Petites Cantines Bagnolet')")
        assert "its emails are on their way" in page.locator(".flash").inner_text()
        [event] = office.announced()
        assert event.data["title"] == "Opening of Petites Cantines Bagnolet"

        deliveries = office.deliver(event, donors=3)
        office.mark(sent=[deliveries[1].id], failed=[deliveries[0].id])
        page.reload()
        assert page.locator("[data-count=sent]").inner_text() == "1"
        assert page.locator("[data-count=failed]").inner_text() == "1"
        pages.assert_accessible(page)
        pages.screenshot(page, FOLDER, "published-counts")
        pages.tab_to(page, "table button")
        page.keyboard.press("Enter")
        page.wait_for_selector(".flash:has-text('goes out again')")
        assert page.locator("text=No email failed.").count() == 1
        pages.assert_accessible(page)
        pages.screenshot(page, FOLDER, "resent")

        page.goto(f"{site}/backoffice/news/{SLUG}")
        pages.assert_accessible(page)
        pages.screenshot(page, FOLDER, "posts")
        assert not pages.csp_errors(page)
        page.context.close()
