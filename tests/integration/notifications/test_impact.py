"""Impact emails over the real broker, PostgreSQL and SMTP sink, with the real ledger in front
of notifications (its consumer, its outbox relay): a gift that crosses three milestones at
once makes one impact email per donor who asked for news, naming the highest; and 2,000 gifts
from 200 donors, crossing dozens of milestones, give each donor at most one impact email per
period (a week), the milestones reached meanwhile in one more email when it is over."""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from sqlalchemy import Engine, func, select

from services.ledger import store as ledger_store
from services.ledger.__main__ import MIGRATIONS as LEDGER_MIGRATIONS
from services.ledger.consumer import build_consumer as ledger_consumer
from services.notifications import store
from services.notifications.cli import MIGRATIONS
from services.notifications.config import Settings
from services.notifications.consumer import TOPICS, build_consumer, stationery
from services.notifications.handlers import release_due_impact
from services.notifications.unit_of_work import NotificationsUnitOfWork
from services.notifications.worker import build_sender
from services.shared.db import make_engine, upgrade
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import (
    CAMPAIGN_PUBLISHED,
    CAMPAIGNS_TOPIC,
    DONATION_SUCCEEDED,
    DONATIONS_TOPIC,
    MILESTONE_REACHED,
)
from services.shared.kafka import ensure_topics, make_producer
from services.shared.outbox import OutboxRelay
from tests.support import infra
from tests.support.loops import running, wait_until
from tests.support.mail import Mailbox, body_text

pytestmark = pytest.mark.integration

MEAL = 1350


def start_at_the_end(bootstrap: str, group: str, topics: tuple[str, ...]) -> None:
    """Commit a group's offsets at the end of its topics: it sees only this test's events."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=group, enable_auto_commit=False
    )
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions)
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in ends.items()})
    finally:
        consumer.close(autocommit=False)


@pytest.fixture
def ledger_engine(postgres_admin_url: str) -> Iterator[Engine]:
    with infra.fresh_database(postgres_admin_url, prefix="impact_ledger") as url:
        upgrade(url, LEDGER_MIGRATIONS)
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def settings(database_url: str, kafka_bootstrap: str, mailbox: Mailbox) -> Settings:
    """Notifications on this test's database, group and SMTP sink, with the default budget."""
    upgrade(database_url, MIGRATIONS)
    group = f"test-impact-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, consumer_groups=(group,))
    start_at_the_end(kafka_bootstrap, group, TOPICS)
    base = Settings.from_env()
    assert base.impact_period == 7 * 24 * 3600  # the documented default: a week
    return replace(
        base,
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_group=group,
        smtp_host=mailbox.host,
        smtp_port=mailbox.port,
        smtp_starttls=False,
        smtp_username="",
        send_rate=0,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    producer = make_producer(kafka_bootstrap, "impact-tests")
    yield producer
    producer.close(timeout=10)


@pytest.fixture
def ledger_loops(ledger_engine: Engine, kafka_bootstrap: str, producer: KafkaProducer) -> Any:
    """The ledger's consumer (a group of this test, at the end of the topics) and relay."""
    group = f"test-impact-ledger-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, consumer_groups=(group,))
    start_at_the_end(kafka_bootstrap, group, (DONATIONS_TOPIC, CAMPAIGNS_TOPIC))
    consumer = ledger_consumer(ledger_engine, kafka_bootstrap, group, producer)
    relay = OutboxRelay(ledger_engine, ledger_store.outbox, producer)
    return consumer.run, relay.run


def campaign_published(campaign_id: str, goal_meals: int) -> CloudEvent:
    return new_event(
        CAMPAIGN_PUBLISHED,
        "difts/donations",
        {
            "campaign_id": campaign_id,
            "slug": campaign_id,
            "title": "Les Petites Cantines",
            "cause": "Les Petites Cantines",
            "currency": "EUR",
            "meal_price": MEAL,
            "goal_meals": goal_meals,
        },
    )


def gift(campaign_id: str, donor: str, meals: int, opt_in: bool = True) -> CloudEvent:
    return new_event(
        DONATION_SUCCEEDED,
        "difts/donations",
        {
            "donation_id": f"don-{uuid.uuid4().hex[:12]}",
            "campaign_id": campaign_id,
            "campaign_slug": campaign_id,
            "campaign_title": "Les Petites Cantines",
            "campaign_cause": "Les Petites Cantines",
            "amount": meals * MEAL,
            "currency": "EUR",
            "meal_price": MEAL,
            "donor": {"email": donor, "name": "", "locale": "en"},
            "updates_opt_in": opt_in,
            "succeeded_at": datetime.now(UTC).isoformat(),
        },
    )


def send(producer: KafkaProducer, topic: str, key: str, *events: CloudEvent) -> None:
    futures = [
        producer.send(topic, key=key.encode(), value=event.to_json().encode()) for event in events
    ]
    producer.flush(timeout=60)
    for future in futures:
        future.get(timeout=60)


def milestone_events(ledger_engine: Engine) -> list[Any]:
    with ledger_engine.connect() as conn:
        return list(
            conn.execute(
                select(ledger_store.outbox)
                .where(ledger_store.outbox.c.event_type == MILESTONE_REACHED)
                .order_by(ledger_store.outbox.c.seq)
            )
        )


def processed(engine: Engine, event_ids: list[str]) -> bool:
    with engine.connect() as conn:
        done = conn.execute(
            select(func.count()).where(store.processed.c.event_id.in_(event_ids))
        ).scalar_one()
    return done == len(event_ids)


def impact_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(store.deliveries)
                .where(store.deliveries.c.kind == store.IMPACT)
                .order_by(store.deliveries.c.created_at)
            )
        )


def test_a_gift_crossing_three_milestones_makes_one_email_per_donor(
    settings: Settings,
    engine: Engine,
    ledger_engine: Engine,
    ledger_loops: Any,
    producer: KafkaProducer,
    mailbox: Mailbox,
) -> None:
    campaign_id = f"impact-{uuid.uuid4().hex[:10]}"
    asked = [f"asked-{i}-{uuid.uuid4().hex[:6]}@example.org" for i in range(4)]
    silent = f"silent-{uuid.uuid4().hex[:6]}@example.org"
    consume, relay = ledger_loops
    with (
        running(consume),
        running(relay),
        running(build_consumer(settings, engine).run),
        running(build_sender(settings, engine).run),
    ):
        send(producer, CAMPAIGNS_TOPIC, campaign_id, campaign_published(campaign_id, 300))
        first = [gift(campaign_id, donor, 1) for donor in asked]
        send(producer, DONATIONS_TOPIC, campaign_id, *first, gift(campaign_id, silent, 1, False))
        for donor in [*asked, silent]:
            mailbox.wait_for(1, to=donor, timeout=60)  # the receipts: every donor is known
        # 4 + 1 + 155 = 160 meals: 25 % of the goal (75), the 100th meal and 50 % (150).
        send(producer, DONATIONS_TOPIC, campaign_id, gift(campaign_id, asked[0], 155))
        for donor in asked:
            mailbox.wait_for(2 + (donor == asked[0]), to=donor, timeout=60)
        time.sleep(2)  # anything more would arrive now

    [event] = milestone_events(ledger_engine)
    parts = [p["milestone"] for p in CloudEvent.from_json(event.payload).data["milestones"]]
    assert parts == ["goal-25", "goal-50", "meals-100"]
    for donor in asked:
        messages = mailbox.messages(to=donor)
        impact = [m for m in messages if "meals for" in str(m["Subject"])]
        assert len(impact) == 1, [str(m["Subject"]) for m in messages]
        assert impact[0]["Subject"] == (
            "Together you funded 150 meals for Les Petites Cantines: half of the goal"
        )
        assert "The counter now stands at 160 meals." in body_text(impact[0])
        assert len(messages) == 2 + (donor == asked[0])  # receipts and the one impact email
    assert len(mailbox.messages(to=silent)) == 1  # the receipt only


def test_thousands_of_gifts_give_each_donor_at_most_one_impact_email_a_week(
    settings: Settings,
    engine: Engine,
    ledger_engine: Engine,
    ledger_loops: Any,
    producer: KafkaProducer,
) -> None:
    campaign_id = f"impact-many-{uuid.uuid4().hex[:8]}"
    donors = [f"donor-{i:03d}-{uuid.uuid4().hex[:4]}@example.org" for i in range(200)]
    rng = random.Random(2026)
    gifts = [gift(campaign_id, donors[i % 200], rng.randint(1, 5)) for i in range(2000)]
    total_meals = sum(e.data["amount"] // MEAL for e in gifts)
    consume, relay = ledger_loops
    started = time.monotonic()
    with running(consume), running(relay), running(build_consumer(settings, engine).run):
        send(producer, CAMPAIGNS_TOPIC, campaign_id, campaign_published(campaign_id, 4000))
        send(producer, DONATIONS_TOPIC, campaign_id, *gifts)

        def all_milestones_told() -> bool:
            with ledger_engine.connect() as conn:
                booked = conn.execute(
                    select(ledger_store.campaign_totals.c.donations).where(
                        ledger_store.campaign_totals.c.campaign_id == campaign_id
                    )
                ).scalar()
            if booked != len(gifts):
                return False
            return processed(engine, [row.event_id for row in milestone_events(ledger_engine)])

        wait_until(all_milestones_told, "every gift booked and every milestone told", 300)
    elapsed = time.monotonic() - started

    moments = milestone_events(ledger_engine)
    crossed = sum(len(CloudEvent.from_json(row.payload).data["milestones"]) for row in moments)
    assert crossed == total_meals // 100 + 4  # every 100 meals, and the 4 quarters of the goal
    during = Counter(row.recipient for row in impact_rows(engine))
    assert max(during.values()) == 1  # a week has not passed: one email each at most

    # A week later, the milestones reached meanwhile go in one more email each.
    later = datetime.now(UTC) + timedelta(days=7, minutes=1)
    while True:
        with NotificationsUnitOfWork(engine) as uow:
            if not release_due_impact(uow, stationery(settings), later):
                break
    rows = impact_rows(engine)
    per_donor = Counter(row.recipient for row in rows)
    assert set(per_donor) == set(donors)
    assert max(per_donor.values()) <= 2
    for donor in donors:
        subjects = [row.subject for row in rows if row.recipient == donor]
        assert len(set(subjects)) == len(subjects), subjects
    # Everyone ends up told the last milestone reached.
    last = CloudEvent.from_json(moments[-1].payload).data
    for donor in donors:
        newest = [row for row in rows if row.recipient == donor][-1]
        assert newest.milestone == last["milestone"], (donor, newest.subject)
    print(
        f"\n{len(gifts)} gifts, {total_meals} meals, {crossed} milestones in {len(moments)} "
        f"moments, in {elapsed:.1f}s; impact emails per donor: max {max(per_donor.values())}, "
        f"median {statistics.median(per_donor.values())} (one email per milestone would have "
        f"sent up to {crossed})"
    )
