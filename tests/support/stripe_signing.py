"""Signing webhook payloads exactly as Stripe does (the scheme behind `Stripe-Signature`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value for `payload`: t=<time>,v1=<HMAC-SHA256>."""
    stamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{stamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def checkout_completed_event(
    donation_id: str,
    campaign_id: str,
    amount: int,
    currency: str = "eur",
    session_id: str | None = None,
    event_id: str | None = None,
    payment_status: str = "paid",
) -> dict[str, Any]:
    """A `checkout.session.completed` event as Stripe would send it for one donation."""
    session = session_id or f"cs_test_{uuid.uuid4().hex}"
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": session,
                "object": "checkout.session",
                "mode": "payment",
                "submit_type": "donate",
                "amount_total": amount,
                "currency": currency,
                "client_reference_id": donation_id,
                "metadata": {"donation_id": donation_id, "campaign_id": campaign_id},
                "payment_intent": f"pi_{uuid.uuid4().hex[:24]}",
                "payment_status": payment_status,
                "status": "complete",
            }
        },
    }


def encode(event: dict[str, Any]) -> bytes:
    """The JSON body Stripe posts."""
    return json.dumps(event).encode()
