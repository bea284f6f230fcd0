"""Donations on real PostgreSQL, stripe-mock and Kafka: a paid checkout is published exactly
once through the outbox, and refused input leaves nothing behind."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from services.donations import store
from services.shared.events import CAMPAIGN_PUBLISHED, DONATION_SUCCEEDED
from tests.integration.donations.conftest import post_signed, published, rows_in
from tests.support.stripe_signing import checkout_completed_event, encode

pytestmark = pytest.mark.integration


def give(client: FlaskClient, slug: str, **body: Any) -> Any:
    return client.post(
        f"/api/v1/campaigns/{slug}/donations",
        json={"donor": {"email": "ada@example.org", "name": "Ada"}, **body},
        headers={"X-Correlation-ID": "req-ada-1"},
    )


def webhook(client: FlaskClient, event: dict[str, Any]) -> Any:
    return post_signed(client, encode(event))


def test_a_paid_checkout_is_published_once_through_the_outbox(donations: dict[str, Any]) -> None:
    client = donations["client"]
    reply = give(client, donations["slug"], amount=2700, currency="eur", updates_opt_in=True)
    assert reply.status_code == 201, reply.json
    donation = reply.json
    assert donation["checkout_url"].startswith("http")

    event = checkout_completed_event(donation["id"], donations["campaign_id"], 2700)
    assert webhook(client, event).json["outcome"] == "succeeded"
    assert webhook(client, event).json["outcome"] == "duplicate"

    assert donations["relay"].publish_pending() == 2  # campaign published + donation succeeded
    assert donations["relay"].publish_pending() == 0  # nothing is published twice

    events = published(donations)
    # Two topics: order holds within a campaign's partition of each, not across them.
    assert sorted(e.type for e in events) == [CAMPAIGN_PUBLISHED, DONATION_SUCCEEDED]
    (succeeded,) = [e for e in events if e.type == DONATION_SUCCEEDED]
    assert succeeded.data["donation_id"] == donation["id"]
    assert (succeeded.data["amount"], succeeded.data["currency"]) == (2700, "EUR")
    assert succeeded.data["meal_price"] == 1350
    assert succeeded.correlationid == "req-ada-1"
    assert json.loads(succeeded.to_json())["specversion"] == "1.0"


def test_an_unpaid_or_unknown_checkout_publishes_nothing(donations: dict[str, Any]) -> None:
    client = donations["client"]
    donation = give(client, donations["slug"], meals=1).json
    unpaid = checkout_completed_event(
        donation["id"], donations["campaign_id"], 1350, payment_status="unpaid"
    )
    assert webhook(client, unpaid).json["outcome"] == "awaiting_payment"
    unknown = checkout_completed_event(str(uuid.uuid4()), donations["campaign_id"], 1350)
    assert webhook(client, unknown).json["outcome"] == "unmatched"
    wrong_amount = checkout_completed_event(donation["id"], donations["campaign_id"], 1)
    assert webhook(client, wrong_amount).json["outcome"] == "amount_mismatch"
    with donations["engine"].connect() as conn:
        types = conn.execute(select(store.outbox.c.event_type)).scalars().all()
    assert types == [CAMPAIGN_PUBLISHED]


def test_refused_gifts_store_and_publish_nothing(donations: dict[str, Any]) -> None:
    client = donations["client"]
    for body in (
        {"amount": -1},
        {"amount": 12.5},
        {"amount": 99},
        {"amount": 10**9},
        {"amount": 2700, "currency": "usd"},
        {"amount": 2700, "currency": "zzz"},
        {"meals": 0},
    ):
        reply = give(client, donations["slug"], **body)
        assert 400 <= reply.status_code < 500, body
        assert reply.json["errors"], body
    bad_email = client.post(
        f"/api/v1/campaigns/{donations['slug']}/donations",
        json={"amount": 2700, "donor": {"email": "ada"}},
    )
    assert bad_email.status_code == 422
    assert "email" in bad_email.json["errors"]["json"]["donor"]
    assert rows_in(donations["engine"], store.donations) == 0
    assert rows_in(donations["engine"], store.outbox) == 1
