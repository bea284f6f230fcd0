"""The donations unit of work on an SQLite file: writers take turns (a failed transaction gives
its turn back; two spellings of one file share one turn), and the webhook's recorder, whose
concurrent calls share commits, answers each call for its own row."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.donations import store
from services.donations.unit_of_work import (
    DonationsUnitOfWork,
    StripeEventRecorder,
    sqlite_writers,
)
from services.shared.db import make_engine, upgrade
from tests.support.donations import DONATIONS_MIGRATIONS

pytestmark = pytest.mark.integration


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'donations.db'}"
    upgrade(url, DONATIONS_MIGRATIONS)
    return url


def test_a_failed_transaction_gives_its_write_turn_back(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    now = datetime.now(UTC)
    with pytest.raises(RuntimeError), DonationsUnitOfWork(engine) as uow:
        uow.stripe_events.receive("evt_undone", "refund.created", "{}", now)
        raise RuntimeError("the request failed")
    done = threading.Event()

    def next_writer() -> None:
        with DonationsUnitOfWork(engine) as uow:
            assert uow.stripe_events.receive("evt_undone", "refund.created", "{}", now)
        done.set()

    threading.Thread(target=next_writer, daemon=True).start()
    assert done.wait(30), "the next writer never got its turn"
    engine.dispose()


def test_two_spellings_of_one_file_share_one_turn(sqlite_url: str, tmp_path: Path) -> None:
    other = make_engine(f"sqlite:///{tmp_path / '.' / 'donations.db'}")
    engine = make_engine(sqlite_url)
    assert sqlite_writers(engine) is sqlite_writers(other) is not None
    assert sqlite_writers(make_engine("sqlite://")) is None


def test_concurrent_webhooks_are_each_answered_for_their_own_row(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    recorder = StripeEventRecorder(engine)
    now = datetime.now(UTC)
    # 40 webhooks, 8 threads: each of 20 events twice (Stripe's retry racing the first).
    ids = [f"evt_{n % 20}" for n in range(40)]
    answers: list[tuple[str, bool]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def webhooks(mine: list[str]) -> None:
        start.wait()
        for event_id in mine:
            fresh = recorder.receive(event_id, "refund.created", "{}", now)
            with lock:
                answers.append((event_id, fresh))

    threads = [threading.Thread(target=webhooks, args=(ids[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 40
    for event_id in set(ids):
        assert sorted(fresh for seen, fresh in answers if seen == event_id) == [False, True]
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(store.stripe_events)).scalar_one()
    assert rows == 20
    engine.dispose()


def test_the_recorder_stores_a_row_as_the_repository_does(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    now = datetime.now(UTC)
    assert StripeEventRecorder(engine).receive("evt_fast", "refund.created", "{}", now, "c-1")
    with DonationsUnitOfWork(engine) as uow:
        assert uow.stripe_events.receive("evt_slow", "refund.created", "{}", now, "c-1")
    table = store.stripe_events
    with engine.connect() as conn:
        # As stored: the same text for the same moment, whichever path wrote it.
        raw = dict(conn.exec_driver_sql("SELECT id, received_at FROM stripe_events").all())
        rows = {row.id: row._asdict() for row in conn.execute(select(table))}
    assert raw["evt_fast"] == raw["evt_slow"]
    assert {**rows["evt_fast"], "id": "evt_slow"} == rows["evt_slow"]
    with DonationsUnitOfWork(engine) as uow:
        claimed = uow.stripe_events.claim_received(now + timedelta(seconds=1), now, 10)
    assert sorted(event.id for event in claimed) == ["evt_fast", "evt_slow"]
    engine.dispose()
