"""A development-only stand-in for Stripe's hosted payment page, for runs on stripe-mock
(which has no pages). Paying signs a `checkout.session.completed` event with the webhook
secret exactly as Stripe signs it and posts it through the real webhook endpoint, as
`stripe trigger` does. The app registers this blueprint only when the test checkout setting
is on, which the settings refuse with a live key or without a mock API base."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from flask import Blueprint, abort, current_app, redirect, request
from werkzeug.wrappers import Response

from . import views
from .api import donations_service
from .pages import render_page

dev_checkout = Blueprint("test_checkout", __name__, url_prefix="/test-checkout")


def stripe_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header Stripe would send: t=<time>,v1=<HMAC-SHA256>."""
    signed = f"{timestamp}.".encode() + payload
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


def completed_event(donation: Any) -> dict[str, Any]:
    """The checkout.session.completed event Stripe sends when this donation is paid."""
    return {
        "id": f"evt_test_{uuid.uuid4().hex}",
        "object": "event",
        "created": int(time.time()),
        "livemode": False,
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": donation.checkout_session_id,
                "object": "checkout.session",
                "mode": "payment",
                "submit_type": "donate",
                "amount_total": donation.amount,
                "currency": donation.currency.lower(),
                "client_reference_id": donation.id,
                "metadata": {"donation_id": donation.id, "campaign_id": donation.campaign_id},
                "payment_intent": f"pi_test_{uuid.uuid4().hex[:24]}",
                "payment_status": "paid",
                "status": "complete",
            }
        },
    }


def _pending(donation_id: str) -> Any:
    with donations_service().engine.connect() as conn:
        donation = views.donation(conn, donation_id)
        campaign = views.campaign_by_id(conn, donation.campaign_id) if donation else None
    if donation is None or campaign is None:
        abort(404)
    return donation, campaign


@dev_checkout.get("/<donation_id>")
def page(donation_id: str) -> Any:
    """The pretend payment page."""
    donation, campaign = _pending(donation_id)
    return render_page("test_checkout.html", donation=donation, campaign=campaign)


@dev_checkout.post("/<donation_id>")
def pay(donation_id: str) -> Response:
    """Pay: sign and post the webhook Stripe would send, then return like Stripe does."""
    donation, _campaign = _pending(donation_id)
    if request.form.get("outcome") == "cancel":
        # Like Stripe's "back" link: the donor returns to the cancel URL, nothing is paid.
        return redirect(f"/donations/{donation_id}/canceled", 303)
    settings = donations_service().settings
    payload = json.dumps(completed_event(donation)).encode()
    signature = stripe_signature(payload, settings.stripe_webhook_secret, int(time.time()))
    # Through the app's own webhook endpoint, so verification and deduplication are the real
    # ones; in-process, so a one-worker server does not wait on itself.
    answer = current_app.test_client().post(
        "/webhooks/stripe",
        data=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )
    if answer.status_code != 200:
        abort(502)
    return redirect(f"/donations/{donation_id}/thanks", 303)
