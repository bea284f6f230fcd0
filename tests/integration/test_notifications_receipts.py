"""Receipts over the real broker, database and SMTP server: a donor whose gift Stripe confirmed
gets exactly one receipt, whatever Kafka redelivers or a consumer replays, and a relay that is
down only delays it."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from services.notifications import store
from services.notifications.__main__ import MIGRATIONS, build_sender
from services.notifications.app import create_app
from services.notifications.config import Settings
from services.notifications.consumer import build_consumer
from services.shared.db import make_engine, upgrade
from services.shared.envelope import CloudEvent, new_event
from services.shared.events import DONATION_SUCCEEDED, DONATIONS_TOPIC
from services.shared.kafka import ensure_topics, make_producer
from tests.support.infra import free_port
from tests.support.mail import Mailbox, body_text

pytestmark = pytest.mark.integration

WAIT = 60.0


@pytest.fixture
def settings(
    database_url: str, kafka_bootstrap: str, consumer_group: str, mailbox: Mailbox
) -> Settings:
    """The service configured against this test's database, group and SMTP sink."""
    upgrade(database_url, MIGRATIONS)
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


@contextlib.contextmanager
def running(loop: Callable[[threading.Event], None]) -> Iterator[None]:
    """Run a service loop in a thread for the duration of the block."""
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the loop did not stop"


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


def donation_succeeded(
    campaign: Campaign, email: str, amount: int = 2700, locale: str = "en"
) -> CloudEvent:
    """The event the donations service publishes once Stripe confirmed a payment."""
    donation_id = f"don_{uuid.uuid4().hex[:12]}"
    return new_event(
        DONATION_SUCCEEDED,
        "difts/donations",
        {
            "donation_id": donation_id,
            "campaign_id": campaign.id,
            "campaign_slug": campaign.slug,
            "campaign_title": campaign.title,
            "amount": amount,
            "currency": "EUR",
            "meal_price": 1350,
            "donor": {"email": email, "name": "Camille", "locale": locale},
            "updates_opt_in": True,
            "succeeded_at": datetime.now(UTC).isoformat(),
        },
        subject=f"donations/{donation_id}",
    )


def publish(bootstrap: str, campaign: Campaign, *events: CloudEvent) -> None:
    """Put events on the donations topic, keyed by campaign like the outbox relay does."""
    producer = make_producer(bootstrap, "notifications-tests")
    try:
        for event in events:
            producer.send(
                DONATIONS_TOPIC, key=campaign.id.encode(), value=event.to_json().encode()
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


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_confirmed_gift_gets_exactly_one_receipt_whatever_is_redelivered_or_replayed(
    settings: Settings,
    engine: Engine,
    mailbox: Mailbox,
    kafka_bootstrap: str,
    campaign: Campaign,
) -> None:
    donor = a_donor()
    gift = donation_succeeded(campaign, donor, amount=2700)
    sender = build_sender(settings, engine)

    publish(kafka_bootstrap, campaign, gift)
    with running(build_consumer(settings, engine).run), running(sender.run):
        [receipt] = mailbox.wait_for(1, to=donor, timeout=WAIT)

        # Kafka redelivers the same event (same id), and a later gift of the same campaign
        # follows it on the same partition: once that one's receipt is out, the redelivery
        # has been handled.
        marker = a_donor()
        publish(kafka_bootstrap, campaign, gift, donation_succeeded(campaign, marker))
        mailbox.wait_for(1, to=marker, timeout=WAIT)

    assert receipt["Subject"] == "Thank you for your gift to Les Petites Cantines"
    text = body_text(receipt)
    assert "Thank you for your gift of €27.00 to Les Petites Cantines." in text
    assert "It funds 2 meals" in text
    assert gift.data["donation_id"] in text
    assert f"/campaigns/{campaign.slug}" in text

    # A consumer with no committed offsets reads the whole topic again, into the same
    # database: nothing is sent twice.
    replay_group = f"{settings.consumer_group}-replay"
    ensure_topics(kafka_bootstrap, consumer_groups=(replay_group,))
    marker = a_donor()
    with running(build_consumer(settings, engine, group_id=replay_group).run), running(sender.run):
        publish(kafka_bootstrap, campaign, donation_succeeded(campaign, marker))
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

    publish(
        kafka_bootstrap, campaign, donation_succeeded(campaign, donor, amount=500, locale="fr-FR")
    )
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
    gift = donation_succeeded(campaign, donor)
    publish(kafka_bootstrap, campaign, gift)
    with running(build_consumer(settings, engine).run):
        wait_until(lambda: receipts_of(engine, gift.data["donation_id"]), "the queued receipt")

    # The consumer read the shared topic from the start, so other tests' receipts are queued
    # here too: drain everything that is due.
    nobody_listens = build_sender(replace(settings, smtp_port=free_port()), engine)
    while nobody_listens.send_due():
        pass

    [row] = receipts_of(engine, gift.data["donation_id"])
    assert (row.status, row.attempts) == ("pending", 1)
    assert store.as_utc(row.next_attempt_at) > datetime.now(UTC)
    assert row.last_error
    assert mailbox.messages(to=donor) == []

    # The relay is back; the retry is due.
    sender = build_sender(settings, engine)
    retry_due = store.as_utc(row.next_attempt_at) + timedelta(seconds=1)
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
        with engine.begin() as conn:
            for n in range(3):
                store.add_delivery(
                    conn,
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
        with engine.begin() as first, engine.begin() as second:
            mine = store.claim_due(first, later, 2, lease)
            theirs = store.claim_due(second, later, 2, lease)
    finally:
        engine.dispose()

    assert len(mine) == 2
    assert len(theirs) == 1
    assert {d.id for d in mine}.isdisjoint({d.id for d in theirs})
