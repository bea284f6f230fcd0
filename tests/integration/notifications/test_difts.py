"""A company's difts over the real broker, database (SQLite and PostgreSQL) and SMTP sink: a
dift issued (and announced twice) gets one invitation with its personal link; a directed dift
gets its confirmation and no reminder; an undirected dift near its expiry gets one reminder;
every invitation or reminder sent or bounced (an SMTP 5xx) is published as
dift_invitation_sent on notifications.events, keyed by programme, through the outbox."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaConsumer
from sqlalchemy import Engine, select

from services.notifications import handlers, store
from services.notifications.cli import MIGRATIONS
from services.notifications.config import Settings
from services.notifications.consumer import TOPICS, build_consumer, stationery
from services.notifications.domain import DeliveryStatus
from services.notifications.store import DueDelivery
from services.notifications.unit_of_work import NotificationsUnitOfWork
from services.notifications.worker import build_relay, build_sender, release_dift_reminders
from services.shared.db import make_engine, upgrade
from services.shared.envelope import CloudEvent
from services.shared.events import NOTIFICATIONS_TOPIC, PROGRAMMES_TOPIC
from services.shared.kafka import make_producer
from services.shared.outbox import OUTBOX_CHANNEL
from tests.support.loops import end_offsets, running, start_group_at, wait_until
from tests.support.mail import Mailbox, body_text
from tests.support.notifications import dift_directed, dift_issued

pytestmark = pytest.mark.integration

WAIT = 60.0
NBSP = "\u00a0"
# A reminder falls due this soon after the dift is issued (REMINDER_DAYS before its expiry):
# long enough for the consumer to join its group and queue the invitation before then.
SOON = timedelta(seconds=15)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A notifications database at the newest schema, of each kind."""
    url = (
        f"sqlite:///{tmp_path / 'notifications.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("database_url")
    )
    upgrade(url, MIGRATIONS)
    return url


@pytest.fixture
def before(kafka_bootstrap: str) -> dict[Any, int]:
    """Where the topics ended before this test: its groups and readers start there."""
    return end_offsets(kafka_bootstrap, (*TOPICS, NOTIFICATIONS_TOPIC))


@pytest.fixture
def settings(
    database: str,
    kafka_bootstrap: str,
    consumer_group: str,
    mailbox: Mailbox,
    before: dict[Any, int],
) -> Settings:
    """The service against this test's database, group and SMTP sink, polling briskly."""
    start_group_at(
        kafka_bootstrap, consumer_group, {tp: at for tp, at in before.items() if tp.topic in TOPICS}
    )
    return replace(
        Settings.from_env(),
        database_url=database,
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_group=consumer_group,
        smtp_host=mailbox.host,
        smtp_port=mailbox.port,
        smtp_starttls=False,
        smtp_username="",
        send_poll=0.2,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def programme() -> str:
    """A programme of this test alone, so shared topics never mix tests up."""
    return f"prog-{uuid.uuid4().hex[:10]}"


def a_recipient() -> str:
    return f"lea-{uuid.uuid4().hex[:10]}@example.org"


def publish(bootstrap: str, programme: str, *events: CloudEvent) -> None:
    """Put events on programmes.events, keyed by programme as donations' relay does."""
    producer = make_producer(bootstrap, "notifications-tests")
    try:
        for event in events:
            producer.send(
                PROGRAMMES_TOPIC, key=programme.encode(), value=event.to_json().encode()
            ).get(timeout=30)
    finally:
        producer.close()


def the_service(settings: Settings, engine: Engine, stack: ExitStack) -> None:
    """The worker's loops that difts need: consumer, senders, reminders, outbox relay."""
    stack.enter_context(running(build_consumer(settings, engine).run))
    stack.enter_context(running(build_sender(settings, engine).run))
    stack.enter_context(running(release_dift_reminders(settings, engine)))
    relay = build_relay(settings, engine)
    stack.callback(relay.producer.close, 10)
    stack.enter_context(running(relay.run))


def invitations_sent(
    bootstrap: str, before: dict[Any, int], programme: str, count: int, timeout: float = WAIT
) -> list[dict[str, Any]]:
    """The dift_invitation_sent events of `programme` on notifications.events since `before`,
    once there are `count` of them (or the timeout passed)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    partitions = [tp for tp in before if tp.topic == NOTIFICATIONS_TOPIC]
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, before[tp])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key == programme.encode():
                        found.append(json.loads(record.value))
        # Anything more would come right behind: look once more.
        for records in consumer.poll(timeout_ms=1000).values():
            found += [json.loads(r.value) for r in records if r.key == programme.encode()]
    finally:
        consumer.close()
    return found


def deliveries_of(engine: Engine, dift_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(store.deliveries)
                .where(store.deliveries.c.dift_id == dift_id)
                .order_by(store.deliveries.c.created_at)
            )
        )


def test_a_dift_issued_twice_gets_one_invitation_with_its_link_and_is_announced_sent(
    settings: Settings,
    engine: Engine,
    mailbox: Mailbox,
    kafka_bootstrap: str,
    programme: str,
    before: dict[Any, int],
) -> None:
    lea = a_recipient()
    now = datetime.now(UTC)
    issued = dift_issued(now, programme_id=programme, email=lea, locale="fr")
    # Announced again with another event id (a re-publication), and redelivered as is.
    again = dift_issued(now, programme_id=programme, email=lea, dift_id=issued.data["dift_id"])
    marker = a_recipient()
    publish(kafka_bootstrap, programme, issued, again, issued)
    with ExitStack() as stack:
        the_service(settings, engine, stack)
        [invitation] = mailbox.wait_for(1, to=lea, timeout=WAIT)
        # A later dift of the same programme follows on the same partition: once its
        # invitation is out, the repeats before it have been handled.
        publish(kafka_bootstrap, programme, dift_issued(now, programme_id=programme, email=marker))
        mailbox.wait_for(1, to=marker, timeout=WAIT)
        announced = invitations_sent(kafka_bootstrap, before, programme, 2)

    assert len(mailbox.messages(to=lea)) == 1
    assert invitation["Subject"] == "Acme vous offre un dift de 20 €"
    text = body_text(invitation)
    assert f"http://127.0.0.1:8001/difts/redeem/tok-{issued.data['dift_id']}" in text
    assert f"20{NBSP}€ = 1{NBSP}repas à Les Petites Cantines Bagnolet" in text
    [row] = deliveries_of(engine, issued.data["dift_id"])
    assert (row.kind, row.status, row.attempts) == ("dift_invitation", "sent", 1)
    mine = [e for e in announced if e["data"]["dift_id"] == issued.data["dift_id"]]
    assert [(e["type"], e["data"]["kind"], e["data"]["status"]) for e in mine] == [
        ("difts.notification.dift_invitation_sent.v1", "invitation", "sent")
    ]
    assert len(announced) == 2  # and the marker's


def test_a_directed_dift_gets_its_confirmation_and_no_reminder(
    settings: Settings,
    engine: Engine,
    mailbox: Mailbox,
    kafka_bootstrap: str,
    programme: str,
) -> None:
    lea = a_recipient()
    now = datetime.now(UTC)
    issued = dift_issued(
        now, programme_id=programme, email=lea, locale="en", expires_in=timedelta(days=3) + SOON
    )
    split = (("camp_bagnolet", 1400), ("camp_bruz", 600))
    directed = dift_directed(issued, now, allocations=split, updates_opt_in=True)
    publish(kafka_bootstrap, programme, issued)
    with ExitStack() as stack:
        the_service(settings, engine, stack)
        mailbox.wait_for(1, to=lea, timeout=WAIT)  # the invitation, then the choice
        publish(kafka_bootstrap, programme, directed)
        mailbox.wait_for(2, to=lea, timeout=WAIT)
    # The worker's reminder round, once the reminder would have been due.
    with NotificationsUnitOfWork(engine) as uow:
        due = now + SOON + timedelta(seconds=1)
        assert handlers.release_due_reminders(uow, stationery(settings), due) == 0

    kinds = [row.kind for row in deliveries_of(engine, issued.data["dift_id"])]
    assert kinds == ["dift_invitation", "dift_confirmation"]
    invitation, confirmation = mailbox.messages(to=lea)
    assert confirmation["Subject"] == "Thank you: your €20 dift is on its way"
    text = body_text(confirmation)
    assert "- €14 to Les Petites Cantines Bagnolet (€14 = 1 meal at" in text
    assert "- €6 to Les Petites Cantines Bruz (€6 = 22% of a meal at" in text
    with engine.connect() as conn:
        consented = conn.execute(
            select(store.donors.c.campaign_id, store.donors.c.consent_source).where(
                store.donors.c.email == lea
            )
        ).all()
    assert sorted(consented) == [("camp_bagnolet", "dift"), ("camp_bruz", "dift")]


def test_an_undirected_dift_near_its_expiry_gets_one_reminder(
    settings: Settings,
    engine: Engine,
    mailbox: Mailbox,
    kafka_bootstrap: str,
    programme: str,
    before: dict[Any, int],
) -> None:
    lea = a_recipient()
    now = datetime.now(UTC)
    issued = dift_issued(
        now, programme_id=programme, email=lea, expires_in=timedelta(days=3) + SOON
    )
    publish(kafka_bootstrap, programme, issued)
    with ExitStack() as stack:
        the_service(settings, engine, stack)
        invitation, reminder = mailbox.wait_for(2, to=lea, timeout=WAIT + SOON.total_seconds())
        announced = invitations_sent(kafka_bootstrap, before, programme, 2)
        time.sleep(2.5)  # a second reminder would come in the next rounds

    assert len(mailbox.messages(to=lea)) == 2
    assert invitation["Subject"].startswith("Acme vous offre")
    assert reminder["Subject"].startswith("Rappel : votre dift de 20 € offert par Acme expire le")
    assert f"/difts/redeem/tok-{issued.data['dift_id']}" in body_text(reminder)
    assert [(e["data"]["kind"], e["data"]["status"]) for e in announced] == [
        ("invitation", "sent"),
        ("reminder", "sent"),
    ]


def test_an_smtp_5xx_refusal_bounces_the_invitation_and_is_announced_bounced(
    settings: Settings,
    engine: Engine,
    mailbox: Mailbox,
    kafka_bootstrap: str,
    programme: str,
    before: dict[Any, int],
) -> None:
    gone = a_recipient()
    mailbox.reject(gone)
    issued = dift_issued(datetime.now(UTC), programme_id=programme, email=gone)
    publish(kafka_bootstrap, programme, issued)
    with ExitStack() as stack:
        the_service(settings, engine, stack)
        [row] = wait_until(
            lambda: [
                r for r in deliveries_of(engine, issued.data["dift_id"]) if r.status != "pending"
            ],
            "the invitation's outcome",
        )
        [announced] = invitations_sent(kafka_bootstrap, before, programme, 1)

    assert (row.status, row.attempts, row.next_attempt_at) == ("bounced", 1, None)
    assert row.last_error.startswith("550")
    assert mailbox.messages(to=gone) == []
    assert (announced["data"]["kind"], announced["data"]["status"]) == ("invitation", "bounced")
    assert announced["data"]["dift_id"] == issued.data["dift_id"]


def test_committed_outbox_rows_notify_the_relays_channel_on_postgresql(
    settings: Settings, engine: Engine, database: str
) -> None:
    if not database.startswith("postgresql"):
        pytest.skip("SQLite has no notifications: its relay polls")
    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    delivery = DueDelivery(
        "d1", "lea@example.org", "", 0, "dift_invitation", "", "dift_1", "prog_1", None
    )
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f'LISTEN "{OUTBOX_CHANNEL}"')
        # Another engine, as another process would have: no in-process ring reaches us.
        elsewhere = make_engine(database)
        try:
            with NotificationsUnitOfWork(elsewhere) as uow:
                handlers.invitation_concluded(uow, delivery, DeliveryStatus.SENT, datetime.now(UTC))
        finally:
            elsewhere.dispose()
        notices = list(listener.notifies(timeout=10, stop_after=1))

    assert [notice.channel for notice in notices] == [OUTBOX_CHANNEL]
