"""Waking a loop in the same process (SQLite and PostgreSQL): a commit that wrote wakes it,
and by then the rows are visible to another connection; a transaction that only read wakes
nothing (an idle loop never wakes itself); a rolled back write wakes nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, func, select

from services.shared.db import make_engine
from services.shared.wake import Wakeup

pytestmark = pytest.mark.integration

metadata = MetaData()
rows = Table("rows", metadata, Column("id", Integer, primary_key=True))


@pytest.fixture
def engine(any_database: str) -> Iterator[Engine]:
    engine = make_engine(any_database)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def visible(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(rows)).scalar_one())


def test_a_commit_that_wrote_wakes_the_loop_once_its_rows_are_visible(engine: Engine) -> None:
    # No LISTEN channel has a trigger here: only the in-process ring can wake it.
    wakeup = Wakeup(engine, "no_trigger_here", poll=30.0)
    stop = threading.Event()
    seen: list[tuple[bool, int]] = []

    def loop() -> None:
        woken = wakeup.wait(stop, 30.0)
        seen.append((woken, visible(engine)))

    thread = threading.Thread(target=loop)
    thread.start()
    stop.wait(0.2)  # the loop is waiting
    with engine.begin() as conn:
        conn.execute(rows.insert().values(id=1))
    thread.join(timeout=60)
    wakeup.close()
    assert seen == [(True, 1)]


def test_reads_and_rolled_back_writes_wake_nothing(engine: Engine) -> None:
    wakeup = Wakeup(engine, "no_trigger_here", poll=0.3)
    stop = threading.Event()
    with engine.begin() as conn:
        conn.execute(select(func.count()).select_from(rows))
    with engine.connect() as conn:
        conn.execute(rows.insert().values(id=2))
        conn.rollback()
    assert wakeup.wait(stop, 0.3) is False
    with engine.begin() as conn:
        conn.execute(rows.insert().values(id=3))
    assert wakeup.wait(stop, 0.3) is True
    wakeup.close()
