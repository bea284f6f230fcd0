"""The donor pages and the edges of the API on PostgreSQL with stripe-mock: locale and money
formatting, CSRF, security headers, the test checkout only where it may exist, bad input."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from services.donations import store
from services.donations.app import create_app
from services.donations.config import Settings
from services.donations.demo import SLUG, seed_demo_campaign
from services.shared.db import make_engine, upgrade
from tests.integration.donations.conftest import rows_in
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings

pytestmark = pytest.mark.integration


def settings_for(url: str, stripe_mock_url: str, **overrides: Any) -> Settings:
    return donations_settings(
        url, stripe_mock_url, stripe_webhook_secret="whsec_pages", **overrides
    )


@pytest.fixture
def pages(database_url: str, stripe_mock_url: str) -> Iterator[dict[str, Any]]:
    url = database_url
    upgrade(url, DONATIONS_MIGRATIONS)
    engine = make_engine(url)
    seed_demo_campaign(engine)
    app = create_app(settings_for(url, stripe_mock_url, test_checkout=True))
    yield {"client": app.test_client(), "engine": engine, "url": url, "stripe": stripe_mock_url}
    engine.dispose()


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the form"
    return found.group(1)


def donations_stored(engine: Any) -> int:
    return rows_in(engine, store.donations)


def test_campaign_page_speaks_the_donors_language(pages: dict[str, Any]) -> None:
    client: FlaskClient = pages["client"]
    french = client.get(f"/campaigns/{SLUG}", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert french.status_code == 200
    assert "13,50\u00a0€ financent un repas" in french.text
    assert "Association labellisée" in french.text and "Grand Est" in french.text
    assert "Opening of Petites Cantines Bagnolet" in french.text
    english = client.get(f"/campaigns/{SLUG}", headers={"Accept-Language": "en-GB"})
    assert "€13.50 funds one meal" in english.text
    csp = english.headers["Content-Security-Policy"]
    assert "script-src 'self' https://js.stripe.com" in csp
    assert (
        "frame-ancestors 'none'" in csp and "form-action 'self' https://checkout.stripe.com" in csp
    )
    assert english.headers["X-Frame-Options"] == "DENY"


def test_news_post_page_renders_markdown_safely(pages: dict[str, Any]) -> None:
    client: FlaskClient = pages["client"]
    posts = client.get(f"/api/v1/campaigns/{SLUG}/news").json
    page = client.get(posts[0]["url"].removeprefix("http://donations.test"))
    assert page.status_code == 200
    assert "<strong>" in page.text and posts[0]["title"] in page.text


def test_the_giving_form_needs_its_csrf_token(pages: dict[str, Any]) -> None:
    client: FlaskClient = pages["client"]
    refused = client.post(f"/campaigns/{SLUG}/give", data={"meals": "2", "email": "a@b.org"})
    assert refused.status_code == 400
    assert donations_stored(pages["engine"]) == 0


def test_the_giving_form_names_the_field_at_fault(pages: dict[str, Any]) -> None:
    client: FlaskClient = pages["client"]
    token = csrf_token(client.get(f"/campaigns/{SLUG}").text)
    reply = client.post(
        f"/campaigns/{SLUG}/give",
        data={"csrf_token": token, "meals": "custom", "custom_amount": "12,345", "email": "x"},
    )
    assert reply.status_code == 422
    assert 'data-field="amount"' in reply.text and 'data-field="donor"' in reply.text
    # Each message also next to its field, which points at it; what was typed is kept.
    assert 'value="12,345" aria-invalid="true" aria-describedby="amount-error"' in reply.text
    assert 'value="x" aria-invalid="true" aria-describedby="donor-error"' in reply.text
    assert 'id="amount-error"' in reply.text and 'id="donor-error"' in reply.text
    assert donations_stored(pages["engine"]) == 0


def test_the_form_gift_goes_to_the_test_checkout_and_back(pages: dict[str, Any]) -> None:
    client: FlaskClient = pages["client"]
    token = csrf_token(client.get(f"/campaigns/{SLUG}").text)
    form = {"csrf_token": token, "meals": "custom", "custom_amount": "20,00", "email": "a@b.org"}
    reply = client.post(f"/campaigns/{SLUG}/give", data={**form, "cover_fee": "on"})
    assert reply.status_code == 303 and "/test-checkout/" in reply.location
    checkout = client.get(reply.location)
    assert "20,5" in checkout.text or "20.5" in checkout.text  # 20.00 EUR plus the fee
    back = client.post(reply.location, data={"csrf_token": token, "outcome": "cancel"})
    assert back.location.endswith("/canceled")
    left = client.get(back.location)
    assert 'data-status="canceled"' in canceled_after_asking(client, left.text, token)


def canceled_after_asking(client: FlaskClient, left_page: str, token: str) -> str:
    """The page a donor lands on after leaving Stripe's page only offers to cancel; the
    donation is canceled by the form's POST, not by fetching the page."""
    assert 'data-status="pending"' in left_page and 'id="cancel-donation"' in left_page
    action = left_page.split('<form method="post" action="', 1)[1].split('"', 1)[0]
    done = client.post(action, data={"csrf_token": token})
    assert done.status_code == 303 and done.location.endswith("/canceled")
    return str(client.get(done.location).text)


def test_fetching_the_cancel_page_changes_nothing(pages: dict[str, Any]) -> None:
    """Link prefetchers and mail scanners fetch GETs: the donation stays pending, a payment
    confirmed later still counts, and a cancel without the form's token is refused."""
    client: FlaskClient = pages["client"]
    token = csrf_token(client.get(f"/campaigns/{SLUG}").text)
    form = {"csrf_token": token, "meals": "2", "email": "scanner@example.org"}
    reply = client.post(f"/campaigns/{SLUG}/give", data=form)
    donation_id = reply.location.rstrip("/").rsplit("/", 1)[-1]
    for _ in range(3):
        page = client.get(f"/donations/{donation_id}/canceled")
        assert page.status_code == 200 and 'data-status="pending"' in page.text
    assert client.get(f"/api/v1/donations/{donation_id}").json["status"] == "pending"
    assert client.post(f"/donations/{donation_id}/cancel").status_code == 400  # no CSRF token
    assert client.get(f"/api/v1/donations/{donation_id}").json["status"] == "pending"
    assert client.get("/donations/no-such-donation/canceled").status_code == 404


def test_the_test_checkout_does_not_exist_in_production(
    database_url: str, stripe_mock_url: str
) -> None:
    url = database_url
    upgrade(url, DONATIONS_MIGRATIONS)
    client = create_app(settings_for(url, stripe_mock_url, test_checkout=False)).test_client()
    assert client.get("/test-checkout/anything").status_code == 404
    with pytest.raises(SystemExit):
        settings_for(url, "", stripe_api_key="sk_live_x", test_checkout=True)
    with pytest.raises(SystemExit):
        settings_for(url, stripe_mock_url, stripe_api_key="sk_live_x", test_checkout=True)


def test_bad_api_input_is_refused_with_the_field_named(pages: dict[str, Any]) -> None:
    client: FlaskClient = pages["client"]
    path = f"/api/v1/campaigns/{SLUG}/donations"
    too_big = client.post(
        path, data=b"{" + b" " * (70 * 1024) + b"}", headers={"Content-Type": "application/json"}
    )
    assert too_big.status_code == 413
    unknown = client.post(
        "/api/v1/campaigns/nope/donations", json={"meals": 1, "donor": {"email": "a@b.org"}}
    )
    assert unknown.status_code == 404
    long_message = client.post(
        path, json={"meals": 1, "donor": {"email": "a@b.org"}, "public_message": "x" * 281}
    )
    assert long_message.status_code == 422
    assert "public_message" in long_message.json["errors"]["json"]
    not_json = client.post(path, data=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code in (400, 422)
    assert donations_stored(pages["engine"]) == 0
