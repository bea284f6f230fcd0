"""The ledger against a real Kafka broker and a real PostgreSQL database: every confirmed gift
is counted exactly once, whatever is redelivered, and what cannot be applied is set aside.

Each test has its own topics (a prefix of its own), its own campaign, its own consumer group
(a fresh group reads its topics from the beginning) and its own database.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import KafkaProducer
from sqlalchemy import Engine, func, select, update

from services.ledger import store, views
from services.ledger.app import create_app
from services.ledger.config import Settings
from services.shared.consumer import IdempotentConsumer
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    CAMPAIGNS_TOPIC,
    DONATION_REFUND_FAILED,
    DONATION_REFUNDED,
    DONATION_SUCCEEDED,
    DONATIONS_TOPIC,
    LEDGER_TOPIC,
    MEALS_FUNDED,
    dead_letter_topic,
)
from services.shared.outbox import OutboxRelay
from tests.integration.ledger.conftest import Topics, read_topic, record_outcomes
from tests.support.loops import WAIT, running, wait_until

pytestmark = pytest.mark.integration


def published(campaign: dict[str, str], meal_price: int = 1350) -> CloudEvent:
    return new_event(
        CAMPAIGN_PUBLISHED,
        "difts/donations",
        {
            "campaign_id": campaign["id"],
            "slug": campaign["slug"],
            "title": "Les Petites Cantines",
            "cause": "Neighbourhood canteens",
            "currency": "EUR",
            "meal_price": meal_price,
            "goal_meals": 1000,
        },
    )


def gift(campaign: dict[str, str], amount: int, correlation_id: str | None = None) -> CloudEvent:
    donation_id = str(uuid.uuid4())
    return new_event(
        DONATION_SUCCEEDED,
        "difts/donations",
        {
            "donation_id": donation_id,
            "campaign_id": campaign["id"],
            "campaign_slug": campaign["slug"],
            "campaign_title": "Les Petites Cantines",
            "amount": amount,
            "currency": "EUR",
            "meal_price": 1350,
            "donor": {"email": "donor@example.org", "name": "A donor", "locale": "fr"},
            "checkout_session_id": f"cs_test_{donation_id}",
            "payment_intent_id": f"pi_test_{donation_id}",
            "succeeded_at": "2026-01-15T12:00:00+00:00",
        },
        subject=f"donations/{donation_id}",
        correlation_id=correlation_id,
    )


def summary(engine: Engine, slug: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        return views.campaign_summary(conn, slug)


def donated(engine: Engine, slug: str) -> int:
    found = summary(engine, slug)
    return found["donated"] if found else 0


def meals_announcements(engine: Engine, campaign_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        payloads = conn.execute(
            select(store.outbox.c.payload)
            .where(store.outbox.c.event_type == MEALS_FUNDED, store.outbox.c.key == campaign_id)
            .order_by(store.outbox.c.seq)
        ).scalars()
        return [json.loads(payload) for payload in payloads]


# --- the specification ---------------------------------------------------------------------


def test_a_27_euro_gift_at_13_50_a_meal_becomes_2_funded_meals(
    engine: Engine,
    ledger: IdempotentConsumer,
    producer: KafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    campaign: dict[str, str],
) -> None:
    topics.send(CAMPAIGNS_TOPIC, campaign["id"], published(campaign))
    topics.send(DONATIONS_TOPIC, campaign["id"], gift(campaign, 2700, "corr-27"))

    with running(ledger.run):
        wait_until(lambda: donated(engine, campaign["slug"]) == 2700, "the gift to be booked")
        wait_until(
            lambda: (summary(engine, campaign["slug"]) or {}).get("goal_meals") == 1000,
            "the campaign to be projected",
        )

    found = summary(engine, campaign["slug"])
    assert found is not None
    assert {k: found[k] for k in ("currency", "meal_price", "donated", "meals_funded")} == {
        "currency": "EUR",
        "meal_price": 1350,
        "donated": 2700,
        "meals_funded": 2,
    }
    assert (found["remainder"], found["donations"], found["refunded"]) == (0, 1, 0)
    with engine.connect() as conn:
        lines = conn.execute(
            select(store.journal_lines.c.account, store.journal_lines.c.amount)
            .join(store.journal_entries)
            .where(store.journal_entries.c.campaign_id == campaign["id"])
            .order_by(store.journal_lines.c.id)
        ).all()
        # The whole journal balances.
        unbalanced = conn.execute(
            select(store.journal_lines.c.currency)
            .group_by(store.journal_lines.c.currency)
            .having(func.sum(store.journal_lines.c.amount) != 0)
        ).all()
    assert lines == [("assets:stripe-clearing", 2700), (f"funds:campaign:{campaign['id']}", -2700)]
    assert unbalanced == []

    # The relay publishes the ledger's announcement to Kafka, keyed by campaign.
    [announced] = meals_announcements(engine, campaign["id"])
    assert announced["correlationid"] == "corr-27"
    assert (announced["data"]["meals_funded"], announced["data"]["donation_meals"]) == (2, 2)
    with engine.begin() as conn:
        # Publish only this test's meals announcement (not the gift's donation_booked event,
        # which other tests cover).
        conn.execute(
            update(store.outbox)
            .where(
                (store.outbox.c.key != campaign["id"]) | (store.outbox.c.event_type != MEALS_FUNDED)
            )
            .values(published_at=datetime.now(UTC))
        )
    relay = OutboxRelay(engine, store.outbox, producer, topic_prefix=topics.prefix)
    assert relay.publish_pending() == 1
    [record] = read_topic(kafka_bootstrap, topics.name(LEDGER_TOPIC), campaign["id"], 1)
    assert json.loads(record.value)["id"] == announced["id"]


def test_the_summary_endpoint_answers_in_minor_units_and_404_for_an_unknown_campaign(
    engine: Engine,
    ledger: IdempotentConsumer,
    topics: Topics,
    database_url: str,
    kafka_bootstrap: str,
    consumer_group: str,
    campaign: dict[str, str],
) -> None:
    for amount in (1000, 2700, 500):
        topics.send(DONATIONS_TOPIC, campaign["id"], gift(campaign, amount))
    with running(ledger.run):
        wait_until(lambda: donated(engine, campaign["slug"]) == 4200, "three gifts")
    client = create_app(Settings(database_url, kafka_bootstrap, consumer_group)).test_client()

    response = client.get(f"/api/v1/campaigns/{campaign['slug']}/summary")

    assert response.status_code == 200
    assert response.get_json() == {
        "campaign": campaign["slug"],
        "campaign_id": campaign["id"],
        "title": "Les Petites Cantines",
        "currency": "EUR",
        "meal_price": 1350,
        "goal_meals": None,
        "donated": 4200,
        "refunded": 0,
        "donations": 3,
        "meals_funded": 3,
        "remainder": 150,
        "gift_meals": 3,
        "difts_amount": 0,
        "difts_received": 0,
        "dift_meals": 0,
    }
    missing = client.get("/api/v1/campaigns/no-such-campaign/summary")
    assert missing.status_code == 404
    assert missing.get_json()["code"] == 404
    assert client.get("/readyz").get_json()["checks"] == {"database": "ok", "broker": "ok"}


def test_the_outbox_gets_one_meals_funded_event_per_change_of_the_count(
    engine: Engine, ledger: IdempotentConsumer, topics: Topics, campaign: dict[str, str]
) -> None:
    # 10.00 -> 0 meals; 37.00 -> 2; 38.00 -> 2; 41.00 -> 3; 67.50 -> 5 (remainder 0).
    for amount in (1000, 2700, 100, 300, 2650):
        topics.send(DONATIONS_TOPIC, campaign["id"], gift(campaign, amount))

    with running(ledger.run):
        wait_until(lambda: donated(engine, campaign["slug"]) == 6750, "five gifts")

    counts = [
        (a["data"]["previous_meals_funded"], a["data"]["meals_funded"], a["data"]["remainder"])
        for a in meals_announcements(engine, campaign["id"])
    ]
    assert counts == [(0, 2, 1000), (2, 3, 50), (3, 5, 0)]
    found = summary(engine, campaign["slug"])
    assert found is not None
    assert (found["meals_funded"], found["remainder"]) == (5, 0)


def test_the_same_event_delivered_twice_counts_once(
    engine: Engine, ledger: IdempotentConsumer, topics: Topics, campaign: dict[str, str]
) -> None:
    twice = gift(campaign, 2700)
    after = gift(campaign, 100)
    topics.send(DONATIONS_TOPIC, campaign["id"], twice, twice, after)
    outcomes = record_outcomes(ledger)

    with running(ledger.run):
        # Same key, same partition: once `after` is applied, both copies have been seen.
        wait_until(lambda: outcomes[after.id] == ["applied"], "the gift after the duplicate")

    assert outcomes[twice.id] == ["applied", "duplicate"]
    assert donated(engine, campaign["slug"]) == 2800
    assert len(meals_announcements(engine, campaign["id"])) == 1


def test_a_refund_that_fails_is_reversed_once_and_the_meals_come_back(
    engine: Engine, ledger: IdempotentConsumer, topics: Topics, campaign: dict[str, str]
) -> None:
    given = gift(campaign, 2700)
    donation_id = given.data["donation_id"]
    refund_id = f"re_{uuid.uuid4().hex[:12]}"
    common = {
        "donation_id": donation_id,
        "campaign_id": campaign["id"],
        "campaign_slug": campaign["slug"],
        "refund_id": refund_id,
        "amount": 1350,
        "currency": "EUR",
    }
    refunded = new_event(
        DONATION_REFUNDED,
        "difts/donations",
        {
            **common,
            "total_refunded": 1350,
            "fully_refunded": False,
            "refunded_at": "2026-01-20T12:00:00+00:00",
        },
    )
    failed = new_event(
        DONATION_REFUND_FAILED,
        "difts/donations",
        {**common, "total_refunded": 0, "failed_at": "2026-01-25T12:00:00+00:00"},
    )
    topics.send(CAMPAIGNS_TOPIC, campaign["id"], published(campaign))
    topics.send(DONATIONS_TOPIC, campaign["id"], given, refunded, failed, failed)
    outcomes = record_outcomes(ledger)

    with running(ledger.run):
        wait_until(lambda: len(outcomes[failed.id]) == 2, "the failure and its copy")

    assert outcomes[refunded.id] == ["applied"]
    assert outcomes[failed.id] == ["applied", "duplicate"]
    found = summary(engine, campaign["slug"])
    assert found is not None
    assert (found["donated"], found["refunded"], found["meals_funded"]) == (2700, 0, 2)
    counts = [a["data"]["meals_funded"] for a in meals_announcements(engine, campaign["id"])]
    assert counts == [2, 1, 2]
    with engine.connect() as conn:
        kinds = conn.execute(
            select(store.journal_entries.c.kind)
            .where(store.journal_entries.c.campaign_id == campaign["id"])
            .order_by(store.journal_entries.c.id)
        ).scalars()
        assert list(kinds) == ["donation", "refund", "refund_failed"]
        assert views.unbalanced_entries(conn) == []


def test_a_consumer_stopped_before_committing_offsets_counts_each_gift_once_after_restart(
    engine: Engine, ledger: IdempotentConsumer, topics: Topics, campaign: dict[str, str]
) -> None:
    first, second = gift(campaign, 2700), gift(campaign, 1350)
    topics.send(DONATIONS_TOPIC, campaign["id"], first, second)
    outcomes = record_outcomes(ledger)

    # Apply both, then stop as if killed: the database has them, the offsets do not.
    crashed = ledger.make_kafka_consumer()
    try:
        deadline = time.monotonic() + WAIT
        while outcomes[second.id] != ["applied"]:
            assert time.monotonic() < deadline, "the first consumer never saw the gifts"
            for records in crashed.poll(timeout_ms=500).values():
                for record in records:
                    ledger.handle(record)
    finally:
        crashed.close(autocommit=False)
    assert donated(engine, campaign["slug"]) == 4050

    later = gift(campaign, 1350)
    topics.send(DONATIONS_TOPIC, campaign["id"], later)
    with running(ledger.run):
        wait_until(lambda: outcomes[later.id] == ["applied"], "the gift after the restart")

    # The restarted consumer of the same group got both again, and counted neither twice.
    assert outcomes[first.id] == ["applied", "duplicate"]
    assert outcomes[second.id] == ["applied", "duplicate"]
    found = summary(engine, campaign["slug"])
    assert found is not None
    assert (found["donated"], found["donations"], found["meals_funded"]) == (5400, 3, 4)


def test_malformed_and_invalid_events_are_dead_lettered_and_the_consumer_goes_on(
    engine: Engine,
    ledger: IdempotentConsumer,
    topics: Topics,
    kafka_bootstrap: str,
    consumer_group: str,
    campaign: dict[str, str],
) -> None:
    invalid = gift(campaign, 2700)
    invalid.data["amount"] = "27.00"  # money is integer minor units, never a string
    unknown = new_event("difts.donation.teleported.v1", "difts/donations", {"x": 1})
    good = gift(campaign, 2700)
    topics.send(DONATIONS_TOPIC, campaign["id"], b"{not json", invalid, unknown, good)
    outcomes = record_outcomes(ledger)

    with running(ledger.run):
        wait_until(lambda: outcomes[good.id] == ["applied"], "the good gift after the bad ones")

    assert outcomes[invalid.id] == ["dead_lettered"]
    assert outcomes[unknown.id] == ["skipped"]
    assert donated(engine, campaign["slug"]) == 2700
    dead_letters = dead_letter_topic(consumer_group, topics.prefix)
    dead = read_topic(kafka_bootstrap, dead_letters, campaign["id"], 2)
    assert [record.value for record in dead] == [b"{not json", invalid.to_json().encode()]
    for record in dead:
        headers = {name: value.decode() for name, value in record.headers}
        assert headers["reason"]
        assert headers["original-topic"] == topics.name(DONATIONS_TOPIC)
        assert headers["consumer-group"] == consumer_group
    assert "not JSON" in dict(dead[0].headers)["reason"].decode()
    assert "amount" in dict(dead[1].headers)["reason"].decode()
