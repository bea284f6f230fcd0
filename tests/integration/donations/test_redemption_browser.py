"""A dift's recipient in a real browser (Debian's headless Chromium, driven by Playwright, as
tests/e2e/test_donor_browser.py drives it) on the donations app served over HTTP on SQLite:
opens the invitation's link, types a wrong split and sees the error next to the fields, splits
the dift, confirms, lands on the thank-you page; then the company opens its impact report by
its signed link and sees the chart drawn. No page breaks the content security policy. A
screenshot of each step is saved under test-output/company-difts/."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from services.donations.app import create_app
from services.donations.domain.programmes import DiftState, Recipient
from services.donations.handlers import difts
from services.donations.handlers.news import WriteNewsPost, write_news_post
from services.donations.impact_report import report_url
from services.donations.unit_of_work import DonationsUnitOfWork
from services.shared.db import make_engine, upgrade
from tests.support import infra
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings
from tests.support.programmes import funded_open_programme

pytestmark = pytest.mark.integration

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[3] / "test-output" / "company-difts"
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
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless; run infra/chromium.sh (make test does) to install it."""
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run `bash infra/chromium.sh` first")
    with playwright_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The donations app over HTTP on a SQLite database with an open programme, one dift
    sent to a recipient, and a news post of the first cause."""
    url = f"sqlite:///{tmp_path / 'browser.db'}"
    upgrade(url, DONATIONS_MIGRATIONS)
    engine = make_engine(url)
    programme, _token, shortlist = funded_open_programme(engine, budget=10_000)
    port = infra.free_port()
    public = f"http://127.0.0.1:{port}"
    settings = donations_settings(url, "http://127.0.0.1:9", public_url=public)
    with DonationsUnitOfWork(engine) as uow:
        issued = difts.issue_dift(
            difts.IssueDift(
                programme.id, public, recipient=Recipient("camille@example.org", "Camille")
            ),
            uow,
        )
    with DonationsUnitOfWork(engine) as uow:
        write_news_post(
            WriteNewsPost(
                shortlist[0],
                "Ouverture de la Petite Cantine de Bagnolet",
                "Le 16 novembre, **85 rue Sadi Carnot**.",
                public,
            ),
            uow,
        )
    server = make_server("127.0.0.1", port, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {
        "engine": engine,
        "settings": settings,
        "programme": programme,
        "link": issued.redeem_url,
        "dift_id": issued.dift.id,
    }
    server.shutdown()
    thread.join(timeout=10)
    engine.dispose()


def test_a_recipient_splits_a_dift_in_a_browser_and_the_company_sees_its_report(
    served: dict[str, Any], browser: Any
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale="fr-FR", viewport={"width": 1000, "height": 1400})
    page = context.new_page()
    policy_breaks: list[str] = []
    page.on(
        "console",
        lambda message: (
            policy_breaks.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )

    page.goto(served["link"])
    assert "Acme vous offre un dift" in page.text_content("h1")
    assert "20,00\u00a0€" in page.text_content("#dift-value")
    assert page.locator(".cause-card").count() == 3
    page.screenshot(path=str(SHOTS / "1-redemption-page.png"), full_page=True)

    shares = page.locator("#split input[type=text]")
    page.check("#choice-split")
    for index, typed in enumerate(("10", "5", "4")):
        shares.nth(index).fill(typed)
    page.click("#continue")
    assert page.is_visible("#shares-error")
    assert shares.nth(2).get_attribute("aria-describedby") == "shares-error"
    assert shares.nth(2).input_value() == "4"
    page.screenshot(path=str(SHOTS / "2-wrong-split.png"), full_page=True)

    shares.nth(2).fill("5")
    page.check("#updates-opt-in")
    page.click("#continue")
    assert page.locator("#allocations li").count() == 3
    page.screenshot(path=str(SHOTS / "3-confirm.png"), full_page=True)
    page.click("#confirm")

    page.wait_for_url("**/thanks")
    assert "Merci\u00a0!" in page.text_content("h1")
    assert page.locator("#funds li").count() == 3
    assert "vous enverront leurs nouvelles" in page.text_content("#thanks-updates")
    page.screenshot(path=str(SHOTS / "4-thank-you.png"), full_page=True)
    with DonationsUnitOfWork(served["engine"]) as uow:
        dift = uow.difts.get(served["dift_id"])
    assert dift is not None and dift.state is DiftState.DIRECTED
    assert [a.amount.amount for a in dift.allocations] == [1000, 500, 500]

    expires = datetime.now(UTC) + timedelta(days=30)
    page.goto(report_url(served["settings"], served["programme"].id, expires))
    assert "Rapport d’impact" in page.text_content("h1")
    assert page.get_attribute("#count-directed", "data-count") == "1"
    chart_width = page.eval_on_selector("#directions-chart", "img => img.naturalWidth")
    assert chart_width > 0, "the chart's SVG did not load"
    assert "Ouverture de la Petite Cantine de Bagnolet" in page.text_content("#news")
    page.screenshot(path=str(SHOTS / "5-impact-report.png"), full_page=True)

    assert policy_breaks == []
    context.close()
