"""Stripe as the donations service uses it: what a Checkout Session carries, and webhook
signatures checked exactly as Stripe signs them."""

import time

import pytest

from services.donations.domain.payments import CheckoutRequest
from services.donations.payments import InvalidWebhook, checkout_session_params, verify_signature
from services.donations.stripe_events import read_event
from services.shared.money import Money
from tests.support.stripe_signing import checkout_completed_event, encode, sign

SECRET = "whsec_test_secret"


def test_a_checkout_carries_the_donation_to_the_charge_for_a_later_resync() -> None:
    params = checkout_session_params(
        CheckoutRequest(
            donation_id="d-1",
            campaign_id="c-1",
            campaign_title="Canteens",
            gift=Money(2767, "EUR"),
            fee_covered=Money(67, "EUR"),
            donor_email="ada@example.org",
            success_url="https://difts.test/thanks",
            cancel_url="https://difts.test/canceled",
        )
    )
    assert (params["mode"], params["submit_type"]) == ("payment", "donate")
    assert params["client_reference_id"] == "d-1"
    expected = {"donation_id": "d-1", "campaign_id": "c-1", "fee_covered": "67"}
    assert params["metadata"] == params["payment_intent_data"]["metadata"] == expected
    assert params["line_items"][0]["price_data"]["unit_amount"] == 2767


def payload() -> bytes:
    return encode(checkout_completed_event("d-1", "c-1", 2700))


def test_a_payload_signed_with_the_endpoint_secret_is_accepted() -> None:
    body = payload()
    verify_signature(body, sign(body, SECRET), SECRET, tolerance=300)
    assert read_event(body).type == "checkout.session.completed"


def test_a_signature_made_with_another_secret_is_refused() -> None:
    body = payload()
    with pytest.raises(InvalidWebhook, match="signature"):
        verify_signature(body, sign(body, "whsec_other"), SECRET, tolerance=300)


def test_a_tampered_body_is_refused() -> None:
    body = payload()
    header = sign(body, SECRET)
    with pytest.raises(InvalidWebhook):
        verify_signature(body.replace(b"2700", b"9999"), header, SECRET, tolerance=300)


def test_a_stale_timestamp_is_refused() -> None:
    body = payload()
    with pytest.raises(InvalidWebhook):
        verify_signature(body, sign(body, SECRET, int(time.time()) - 3600), SECRET, tolerance=300)


@pytest.mark.parametrize("header", [None, "", "garbage", "t=abc,v1=def"])
def test_a_missing_or_malformed_header_is_refused(header: str | None) -> None:
    with pytest.raises(InvalidWebhook):
        verify_signature(payload(), header, SECRET, tolerance=300)
