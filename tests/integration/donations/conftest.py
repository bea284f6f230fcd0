"""Fixtures of the donations integration tests, on PostgreSQL, stripe-mock and Kafka: the app
with a live campaign made through the admin API, its outbox relay, Stripe's signed webhooks
(answered as recorded, then applied as the worker's applier applies them), and the events
read back from Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine, Table, func, select

from services.donations import store
from services.donations.app import create_app
from services.donations.handlers.webhooks import apply_received_events
from services.donations.unit_of_work import DonationsUnitOfWork
from services.shared.db import make_engine, upgrade
from services.shared.envelope import CloudEvent
from services.shared.events import CAMPAIGNS_TOPIC, DONATIONS_TOPIC
from services.shared.kafka import make_producer
from services.shared.outbox import OutboxRelay
from tests.support.donations import DONATIONS_MIGRATIONS, donations_settings
from tests.support.stripe_signing import encode, sign

SECRET = "whsec_integration"


def fuzzing(examples: int, derandomize: bool = True) -> settings:
    """Hypothesis settings for fuzzing an endpoint: `examples` cases, no deadline (a request
    may be slow), no example database (runs do not depend on each other)."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=derandomize,
    )


ADMIN = {"Authorization": "Bearer donations-admin"}
TOKENS = "donations-admin:admin,donations-books:finance"


@pytest.fixture
def donations(
    database_url: str, stripe_mock_url: str, kafka_bootstrap: str
) -> Iterator[dict[str, Any]]:
    """A migrated donations database, the app, a live campaign made through the admin API,
    and the relay of its outbox."""
    upgrade(database_url, DONATIONS_MIGRATIONS)
    settings = donations_settings(
        database_url,
        stripe_mock_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        stripe_webhook_secret=SECRET,
        api_tokens=TOKENS,
    )
    engine = make_engine(database_url)
    client = create_app(settings).test_client()
    slug = f"life-{uuid.uuid4().hex[:10]}"
    created = client.post(
        "/api/v1/campaigns",
        headers=ADMIN,
        json={
            "slug": slug,
            "title": "Canteens",
            "cause": "Les Petites Cantines",
            "cause_certified": True,
            "action_zone": "Grand Est",
            "story_markdown": "We **cook** together.",
            "money_uses": ["Opening canteens", "Training"],
            "meal_price": 1350,
            "currency": "EUR",
            "goal_meals": 100,
        },
    )
    assert created.status_code == 201, created.json
    assert client.post(f"/api/v1/campaigns/{slug}/publish", headers=ADMIN).status_code == 200
    producer = make_producer(kafka_bootstrap, "test-relay")
    yield {
        "client": client,
        "engine": engine,
        "settings": settings,
        "slug": slug,
        "campaign_id": created.json["id"],
        "relay": OutboxRelay(engine, store.outbox, producer),
        "bootstrap": kafka_bootstrap,
    }
    producer.close()
    engine.dispose()


# What the webhook answers a signed event, before anything is applied.
ANSWERED = ("received", "duplicate", "unreadable")


@dataclass
class AppliedAnswer:
    """A webhook's 200 answer, its outcome replaced by what the applier then made of the
    event ("succeeded", "waiting", ...); `answered` is the webhook's own body."""

    status_code: int
    json: dict[str, Any]
    answered: dict[str, Any]
    text: str

    def get_json(self) -> dict[str, Any]:
        return self.json


def post_signed(client: FlaskClient, body: bytes, secret: str = SECRET, apply: bool = True) -> Any:
    """Post a body to the webhook, signed as Stripe signs it; with `apply`, a recorded event
    is then applied by the worker's applier (with the app's own database and Stripe), and
    the answer's outcome is the one it was settled with."""
    answer = client.post(
        "/webhooks/stripe",
        data=body,
        headers={"Stripe-Signature": sign(body, secret), "Content-Type": "application/json"},
    )
    if not apply or answer.status_code != 200:
        return answer
    answered = dict(answer.json)
    assert answered["received"] is True and answered["outcome"] in ANSWERED, answered
    if answered["outcome"] != "received":
        return answer
    outcome, problem = applied(client, answered["event"])
    settled = {**answered, "outcome": outcome, **({"problem": problem} if problem else {})}
    return AppliedAnswer(200, settled, answered, answer.text)


def applied(client: FlaskClient, event_id: str) -> tuple[str, str | None]:
    """Run the worker's applier on the app's database until the recorded event is settled;
    what became of it (and the problem, for one kept as unreadable)."""
    service = client.application.extensions["donations"]
    table = store.stripe_events
    for _round in range(10):
        apply_received_events(DonationsUnitOfWork(service.engine), service.payments)
        with service.engine.connect() as conn:
            row = conn.execute(
                select(table.c.outcome, table.c.problem).where(table.c.id == event_id)
            ).one()
        if row.outcome != "received":
            return str(row.outcome), row.problem
    raise AssertionError(f"{event_id} was recorded but never applied")


def webhook(client: FlaskClient, kind: str, obj: dict[str, Any], event_id: str = "") -> Any:
    """Stripe's signed event of `kind` about `obj`."""
    event = {"id": event_id or f"evt_{uuid.uuid4().hex}", "object": "event", "type": kind}
    return post_signed(client, encode({**event, "data": {"object": obj}}))


def events_keyed(bootstrap: str, key: str, topics: tuple[str, ...]) -> list[CloudEvent]:
    """Every event on `topics` with this key, in each partition's order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [
        TopicPartition(topic, p)
        for topic in topics
        for p in consumer.partitions_for_topic(topic) or []
    ]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    end = consumer.end_offsets(partitions)
    found = []
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        for records in consumer.poll(timeout_ms=1000).values():
            found += [r for r in records if r.key == key.encode()]
    consumer.close()
    return [CloudEvent.from_json(r.value) for r in found]


def published(donations: dict[str, Any]) -> list[CloudEvent]:
    """What the relay published about the campaign, once it has relayed all it holds."""
    while donations["relay"].publish_pending():
        pass
    return events_keyed(
        donations["bootstrap"], donations["campaign_id"], (DONATIONS_TOPIC, CAMPAIGNS_TOPIC)
    )


def rows_in(engine: Engine, table: Table) -> int:
    """How many rows a table holds."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
