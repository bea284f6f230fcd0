"""Donations on real PostgreSQL, stripe-mock and Kafka: a paid checkout is published exactly
once through the outbox, and refused input leaves nothing behind."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import func, select

from services.donations import store
from services.donations.app import create_app
from services.donations.handlers import publish_campaign
from services.shared.db import make_engine, upgrade
from services.shared.envelope import CloudEvent
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    CAMPAIGNS_TOPIC,
    DONATION_SUCCEEDED,
    DONATIONS_TOPIC,
)
from services.shared.kafka import make_producer
from services.shared.money import Money
from services.shared.outbox import OutboxRelay
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings
from tests.support.stripe_signing import checkout_completed_event, encode, sign

SECRET = "whsec_integration"


@pytest.fixture
def donations(
    database_url: str, stripe_mock_url: str, kafka_bootstrap: str
) -> Iterator[dict[str, Any]]:
    """A migrated donations database with one live campaign, its app and its relay."""
    upgrade(database_url, DONATIONS_MIGRATIONS)
    settings = donations_settings(
        database_url,
        stripe_mock_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        stripe_webhook_secret=SECRET,
    )
    engine = make_engine(database_url)
    slug = f"test-{uuid.uuid4().hex[:10]}"
    campaign_id, _ = publish_campaign(
        engine,
        slug=slug,
        title="Test canteens",
        cause="Les Petites Cantines",
        summary="",
        meal_price=Money(1350, "EUR"),
        goal_meals=100,
    )
    producer = make_producer(kafka_bootstrap, "test-relay")
    yield {
        "client": create_app(settings).test_client(),
        "engine": engine,
        "slug": slug,
        "campaign_id": campaign_id,
        "relay": OutboxRelay(engine, store.outbox, producer),
        "bootstrap": kafka_bootstrap,
    }
    producer.close()
    engine.dispose()


def events_about(bootstrap: str, campaign_id: str) -> list[CloudEvent]:
    """Every event on the donations and campaigns topics keyed by this campaign."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [
        TopicPartition(topic, p)
        for topic in (DONATIONS_TOPIC, CAMPAIGNS_TOPIC)
        for p in consumer.partitions_for_topic(topic) or []
    ]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    end = consumer.end_offsets(partitions)
    found = []
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        for records in consumer.poll(timeout_ms=1000).values():
            found += [r for r in records if r.key == campaign_id.encode()]
    consumer.close()
    return [CloudEvent.from_json(r.value) for r in found]


def give(client: FlaskClient, slug: str, **body: Any) -> Any:
    return client.post(
        f"/api/v1/campaigns/{slug}/donations",
        json={"donor": {"email": "ada@example.org", "name": "Ada"}, **body},
        headers={"X-Correlation-ID": "req-ada-1"},
    )


def webhook(client: FlaskClient, event: dict[str, Any]) -> Any:
    body = encode(event)
    return client.post(
        "/webhooks/stripe",
        data=body,
        headers={"Stripe-Signature": sign(body, SECRET), "Content-Type": "application/json"},
    )


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

    published = events_about(donations["bootstrap"], donations["campaign_id"])
    # Two topics: order holds within a campaign's partition of each, not across them.
    assert sorted(e.type for e in published) == [CAMPAIGN_PUBLISHED, DONATION_SUCCEEDED]
    (succeeded,) = [e for e in published if e.type == DONATION_SUCCEEDED]
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
    with donations["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(store.donations)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(store.outbox)).scalar() == 1
