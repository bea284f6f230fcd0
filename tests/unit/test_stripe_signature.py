"""Webhook signatures are checked exactly as Stripe signs them."""

import time

import pytest

from services.donations.payments import InvalidWebhook, verify_signature
from services.donations.stripe_events import read_event
from tests.support.stripe_signing import checkout_completed_event, encode, sign

SECRET = "whsec_test_secret"


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
