"""Receipts over the real broker, database and SMTP server: a donor whose gift Stripe confirmed
gets exactly one receipt, whatever Kafka redelivers or a consumer replays, and a relay that is
down only delays it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from services.notifications import store
from services.notifications.app import create_app
from services.notifications.cli import MIGRATIONS
from services.notifications.config import Settings
from services.notifications.consumer import TOPICS, build_consumer
from services.notifications.unit_of_work import NotificationsUnitOfWork
from services.notifications.worker import build_sender
from services.shared.db import as_utc, make_engine, upgrade
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import DONATION_BOOKED, LEDGER_TOPIC
from services.shared.kafka import ensure_topics, make_producer
from tests.support.infra import free_port
from tests.support.loops import end_offsets, running, start_group_at, wait_until
from tests.support.mail import Mailbox, body_text

pytestmark = pytest.mark.integration

WAIT = 60.0


@pytest.fixture
def before(kafka_bootstrap: str) -> dict[Any, int]:
    """Where the topics ended before this test: its groups read from there."""
    return end_offsets(kafka_bootstrap, TOPICS)


@pytest.fixture
def settings(
    database_url: str,
    kafka_bootstrap: str,
    consumer_group: str,
    mailbox: Mailbox,
    before: dict[Any, int],
) -> Settings:
    """The service configured against this test's database, group and SMTP sink."""
    upgrade(database_url, MIGRATIONS)
    start_group_at(kafka_bootstrap, consumer_group, before)
    return replace(
        Settings.from_env(),
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_group=consumer_group,
        smtp_host=mailbox.host,
        smtp_port=mailbox.port,
        smtp_starttls=False,
        smtp_username="",
        admin_token="test-admin-token",
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@dataclass
class Campaign:
    """A campaign of this test alone, so shared topics never mix tests up."""

    id: str
    slug: str
    title: str = "Les Petites Cantines"


@pytest.fixture
def campaign() -> Campaign:
    tag = f"test-{uuid.uuid4().hex[:10]}"
    return Campaign(id=tag, slug=tag)


def donation_booked(
    campaign: Campaign, email: str, amount: int = 2700, locale: str = "en"
) -> CloudEvent:
    """The event the ledger publishes once it booked a confirmed gift (the first of its
    campaign: its meals are its own whole meals), with what the receipt states."""
    donation_id = f"don_{uuid.uuid4().hex[:12]}"
    meals, remainder = divmod(amount, 1350)
    return new_event(
        DONATION_BOOKED,
        "difts/ledger",
        {
            "donation_id": donation_id,
            "campaign_id": campaign.id,
            "campaign_slug": campaign.slug,
            "amount": amount,
            "currency": "EUR",
            "meal_price": 1350,
            "meals": meals,
            "meals_funded": meals,
            "remainder": remainder,
            "receipt": {
                "donor": {"email": email, "name": "Camille", "locale": locale},
                "campaign_title": campaign.title,
                "succeeded_at": datetime.now(UTC).isoformat(),
            },
        },
        subject=f"donations/{donation_id}",
    )


def publish(bootstrap: str, campaign: Campaign, *events: CloudEvent) -> None:
    """Put events on the ledger topic, keyed by campaign like the outbox relay does."""
    producer = make_producer(bootstrap, "notifications-tests")
    try:
        for event in events:
            producer.send(
                LEDGER_TOPIC, key=campaign.id.encode(), value=event.to_json().encode()
            ).get(timeout=30)
    finally:
        producer.close()


def a_donor() -> str:
    return f"donor-{uuid.uuid4().hex[:10]}@example.org"


def receipts_of(engine: Engine, donation_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(store.deliveries).where(store.deliveries.c.donation_id == donation_id)
            )
        )


def test_a_confirmed_gift_gets_exactly_one_receipt_whatever_is_redelivered_or_replayed(
    settings: Settings,
    engine: Engine,
    mailbox: Mailbox,
    kafka_bootstrap: str,
    campaign: Campaign,
    before: dict[Any, int],
) -> None:
    donor = a_donor()
    gift = donation_booked(campaign, donor, amount=2700)
    sender = build_sender(settings, engine)

    publish(kafka_bootstrap, campaign, gift)
    with running(build_consumer(settings, engine).run), running(sender.run):
        [receipt] = mailbox.wait_for(1, to=donor, timeout=WAIT)

        # Kafka redelivers the same event (same id), and a later booking of the same campaign
        # follows it on the same partition: once that one's receipt is out, the redelivery
        # has been handled.
        marker = a_donor()
        publish(kafka_bootstrap, campaign, gift, donation_booked(campaign, marker))
        mailbox.wait_for(1, to=marker, timeout=WAIT)

    assert receipt["Subject"] == "Thank you for your gift to Les Petites Cantines"
    text = body_text(receipt)
    assert "Thank you for your gift of €27.00 to Les Petites Cantines." in text
    assert "It funds 2 meals" in text
    assert gift.data["donation_id"] in text
    assert f"/campaigns/{campaign.slug}" in text

    # Another group reads the topics again from before this test, into the same database:
    # nothing is sent twice.
    replay_group = f"{settings.consumer_group}-replay"
    ensure_topics(kafka_bootstrap, consumer_groups=(replay_group,))
    start_group_at(kafka_bootstrap, replay_group, before)
    marker = a_donor()
    with running(build_consumer(settings, engine, group_id=replay_group).run), running(sender.run):
        publish(kafka_bootstrap, campaign, donation_booked(campaign, marker))
        mailbox.wait_for(1, to=marker, timeout=WAIT)

    assert len(mailbox.messages(to=donor)) == 1
    [row] = receipts_of(engine, gift.data["donation_id"])
    assert (row.kind, row.status, row.attempts, row.event_id) == ("receipt", "sent", 1, gift.id)
    assert row.sent_at is not None

    answer = (
        create_app(settings)
        .test_client()
        .get(
            f"/api/v1/deliveries?donation_id={gift.data['donation_id']}",
            headers={"Authorization": "Bearer test-admin-token"},
        )
    )
    assert answer.status_code == 200
    [listed] = answer.get_json()
    assert (listed["status"], listed["kind"], listed["recipient"]) == (
        "sent",
        "receipt",
        "d***@example.org",
    )


def test_a_french_donor_gets_a_french_receipt(
    settings: Settings,
    engine: Engine,
    mailbox: Mailbox,
    kafka_bootstrap: str,
    campaign: Campaign,
) -> None:
    donor = a_donor()

    publish(kafka_bootstrap, campaign, donation_booked(campaign, donor, amount=500, locale="fr-FR"))
    with running(build_consumer(settings, engine).run), running(build_sender(settings, engine).run):
        [receipt] = mailbox.wait_for(1, to=donor, timeout=WAIT)

    assert receipt["Subject"] == "Merci pour votre don à Les Petites Cantines"
    text = body_text(receipt)
    assert "Merci pour votre don de 5,00\u00a0€ à Les Petites Cantines." in text
    assert "Il s'ajoute au prochain repas" in text


def test_a_relay_that_is_down_delays_the_receipt_until_it_is_back(
    settings: Settings,
    engine: Engine,
    mailbox: Mailbox,
    kafka_bootstrap: str,
    campaign: Campaign,
) -> None:
    donor = a_donor()
    gift = donation_booked(campaign, donor)
    publish(kafka_bootstrap, campaign, gift)
    with running(build_consumer(settings, engine).run):
        wait_until(lambda: receipts_of(engine, gift.data["donation_id"]), "the queued receipt")

    # Drain everything that is due (the test's one receipt).
    nobody_listens = build_sender(replace(settings, smtp_port=free_port()), engine)
    while nobody_listens.send_due():
        pass

    [row] = receipts_of(engine, gift.data["donation_id"])
    assert (row.status, row.attempts) == ("pending", 1)
    assert as_utc(row.next_attempt_at) > datetime.now(UTC)
    assert row.last_error
    assert mailbox.messages(to=donor) == []

    # The relay is back; the retry is due.
    sender = build_sender(settings, engine)
    retry_due = as_utc(row.next_attempt_at) + timedelta(seconds=1)
    while sender.send_due(now=retry_due):
        pass

    [row] = receipts_of(engine, gift.data["donation_id"])
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(mailbox.wait_for(1, to=donor)) == 1


def test_two_senders_never_claim_the_same_delivery(database_url: str) -> None:
    upgrade(database_url, MIGRATIONS)
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    try:
        with NotificationsUnitOfWork(engine) as uow:
            for n in range(3):
                uow.deliveries.add(
                    store.NewDelivery(
                        event_id=f"evt-{n}",
                        recipient=f"donor-{n}@example.org",
                        kind=store.RECEIPT,
                        campaign_id="camp",
                        donation_id=f"don-{n}",
                        subject="Thank you",
                        message_id=None,
                        message="Subject: Thank you\n\nThanks\n",
                    ),
                    now,
                )
        later = now + timedelta(seconds=1)
        lease = later + timedelta(minutes=10)
        # The first sender still holds its claim (transaction open) when the second claims.
        with NotificationsUnitOfWork(engine) as first, NotificationsUnitOfWork(engine) as second:
            mine = first.deliveries.claim_due(later, 2, lease)
            theirs = second.deliveries.claim_due(later, 2, lease)
    finally:
        engine.dispose()

    assert len(mine) == 2
    assert len(theirs) == 1
    assert {d.id for d in mine}.isdisjoint({d.id for d in theirs})
