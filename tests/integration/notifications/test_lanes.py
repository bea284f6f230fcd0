"""The sender's two lanes and its wake-up, on the real database and SMTP sink: a receipt queued
while a throttled news fan-out drains goes out while most of the fan-out still waits; a lane
idle on a long poll is woken by a committed delivery (a commit in its process, or PostgreSQL's
NOTIFY from the trigger of migration 0006 for one from another); what the lanes conclude is
counted in difts_emails_total."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from services.notifications import store
from services.notifications.cli import MIGRATIONS
from services.notifications.config import Settings
from services.notifications.unit_of_work import NotificationsUnitOfWork
from services.notifications.worker import build_sender
from services.shared.db import make_engine, upgrade
from tests.support import notifications
from tests.support.loops import running, wait_until
from tests.support.mail import Mailbox
from tests.support.notifications import (
    count_deliveries,
    gift_booked,
    news_post,
    save_consenting_donors,
)

pytestmark = pytest.mark.integration

CAMPAIGN = "camp-lanes"


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
def settings(database: str, mailbox: Mailbox) -> Settings:
    return replace(
        Settings.from_env(),
        database_url=database,
        smtp_host=mailbox.host,
        smtp_port=mailbox.port,
        smtp_starttls=False,
        smtp_username="",
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


def queue_news(settings: Settings, engine: Engine, donors: int) -> None:
    """`donors` donors who asked for news, and a post queued to each by the handler."""
    save_consenting_donors(engine, CAMPAIGN, donors)
    notifications.queue_news(settings, engine, news_post(CAMPAIGN, "post_lanes"))


def queue_receipt(settings: Settings, engine: Engine, donor: str) -> None:
    """The ledger booked a gift: the handler queues its receipt (and commits)."""
    notifications.queue_receipt(settings, engine, gift_booked(CAMPAIGN, donor))


count = count_deliveries


def test_a_receipt_queued_while_a_throttled_fan_out_drains_goes_before_the_backlog(
    settings: Settings, engine: Engine, mailbox: Mailbox
) -> None:
    # 200 news emails at 4 a second take 50 s; a receipt behind them would wait that long.
    settings = replace(settings, send_rate=4, send_batch=5)
    queue_news(settings, engine, 200)
    lanes = build_sender(settings, engine)
    assert (lanes.transactional.interval, lanes.bulk.interval) == (0.0, 0.25)

    with running(lanes.run):
        wait_until(lambda: count(engine, "news", "sent") >= 2, "the fan-out under way")
        queue_receipt(settings, engine, "ada@example.org")
        [receipt] = mailbox.wait_for(1, to="ada@example.org", timeout=30)
        news_pending = count(engine, "news", "pending")

    assert receipt["Subject"].startswith("Thank you")
    # Sent while nearly all of the fan-out still waited: it did not queue behind it.
    assert news_pending >= 150, news_pending
    assert count(engine, "receipt", "sent") == 1


def test_an_idle_sender_is_woken_by_a_committed_delivery_not_by_its_poll(
    settings: Settings, engine: Engine, mailbox: Mailbox
) -> None:
    # A poll of a minute: only the wake-up (this process's commit) can send it sooner. On
    # PostgreSQL the wait also returns every second (wake.py), so SQLite is the strict case.
    lanes = build_sender(replace(settings, send_poll=60), engine)
    stop = threading.Event()
    senders = threading.Thread(target=lanes.run, args=(stop,), daemon=True)
    senders.start()
    try:
        time.sleep(1.0)  # nothing to send: both lanes claim nothing and wait
        queue_receipt(settings, engine, "bob@example.org")
        found = mailbox.wait_for(1, to="bob@example.org", timeout=20)
    finally:
        stop.set()
        with NotificationsUnitOfWork(engine):
            pass  # a commit: the waiting lanes wake and hear `stop`
        senders.join(timeout=30)

    assert not senders.is_alive()
    assert len(found) == 1


def test_committed_deliveries_notify_the_senders_channel_on_postgresql(
    settings: Settings, engine: Engine, database: str
) -> None:
    if not database.startswith("postgresql"):
        pytest.skip("SQLite has no notifications: its senders poll")
    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f'LISTEN "{store.DELIVERIES_CHANNEL}"')
        # Another engine, as another process would have: no in-process ring reaches us.
        elsewhere = make_engine(database)
        try:
            queue_receipt(settings, elsewhere, "cy@example.org")
        finally:
            elsewhere.dispose()
        notices = list(listener.notifies(timeout=10, stop_after=1))

    assert [notice.channel for notice in notices] == [store.DELIVERIES_CHANNEL]


def emails(kind: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("difts_emails_total", {"kind": kind, "outcome": outcome}) or 0


def test_what_the_lanes_conclude_is_counted_by_kind_and_outcome(
    settings: Settings, engine: Engine, mailbox: Mailbox
) -> None:
    settings = replace(settings, send_rate=0)
    queue_news(settings, engine, 3)
    with NotificationsUnitOfWork(engine) as uow:  # one donor unsubscribes after the queueing
        donor = uow.donors.get(CAMPAIGN, "donor-0@example.org")
        assert donor is not None
        unsubscribed = replace(donor.consent, unsubscribed_at=datetime.now(UTC))
        uow.donors.save(replace(donor, consent=unsubscribed), datetime.now(UTC))
    mailbox.reject("dan@example.org")
    queue_receipt(settings, engine, "dan@example.org")
    queue_receipt(settings, engine, "eve@example.org")
    before = {
        (kind, outcome): emails(kind, outcome)
        for kind in ("news", "receipt")
        for outcome in ("sent", "failed", "skipped")
    }

    lanes = build_sender(settings, engine)
    while lanes.send_due():
        pass

    after = {key: emails(*key) - seen for key, seen in before.items()}
    assert after == {
        ("news", "sent"): 2,
        ("news", "failed"): 0,
        ("news", "skipped"): 1,
        ("receipt", "sent"): 1,
        ("receipt", "failed"): 1,
        ("receipt", "skipped"): 0,
    }
    assert len(mailbox.messages()) == 3
