"""The unit of work on SQLite and PostgreSQL: what happens inside commits together on a clean
exit and not at all on an exception; a savepoint undoes its part alone; the outbox and the
processed ids are on the same transaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Engine, MetaData, String, Table, func, select

from services.shared.consumer import processed_events_table
from services.shared.db import make_engine
from services.shared.envelope import new_event
from services.shared.events import CAMPAIGN_CLOSED
from services.shared.outbox import outbox_table
from services.shared.unit_of_work import NoOutbox, SqlUnitOfWork

pytestmark = pytest.mark.integration

metadata = MetaData()
notes = Table("notes", metadata, Column("id", String(20), primary_key=True))
outbox = outbox_table(metadata)
processed = processed_events_table(metadata)
EVENT = new_event(
    CAMPAIGN_CLOSED, "test", {"campaign_id": "c", "slug": "s", "closed_at": "2026-01-01T00:00Z"}
)


class NotesUnitOfWork(SqlUnitOfWork):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, outbox, processed)

    def note(self, note_id: str) -> None:
        self.connection.execute(notes.insert().values(id=note_id))


@pytest.fixture
def engine(any_database: str) -> Iterator[Engine]:
    engine = make_engine(any_database)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_clean_exit_commits_the_change_its_events_and_the_event_id_together(
    engine: Engine,
) -> None:
    with NotesUnitOfWork(engine) as uow:
        uow.note("a")
        uow.outbox.add("campaigns.events", "c", EVENT)
        assert uow.processed.claim(EVENT)
        assert not uow.processed.claim(EVENT)
    assert (count(engine, notes), count(engine, outbox), count(engine, processed)) == (1, 1, 1)
    with NotesUnitOfWork(engine) as uow:
        assert uow.processed.seen(EVENT.id) and uow.outbox.has(EVENT.id)  # type: ignore[union-attr]
        assert not uow.processed.seen("other")


def test_an_exception_rolls_everything_back(engine: Engine) -> None:
    with pytest.raises(RuntimeError), NotesUnitOfWork(engine) as uow:
        uow.note("a")
        uow.outbox.add("campaigns.events", "c", EVENT)
        uow.processed.claim(EVENT)
        raise RuntimeError("the handler failed")
    assert (count(engine, notes), count(engine, outbox), count(engine, processed)) == (0, 0, 0)


def test_a_savepoint_undoes_its_part_alone(engine: Engine) -> None:
    with NotesUnitOfWork(engine) as uow:
        uow.note("kept")
        with pytest.raises(RuntimeError), uow.savepoint():
            uow.note("undone")
            raise RuntimeError("one event of the batch failed")
        uow.note("after")
    with engine.connect() as conn:
        assert sorted(conn.execute(select(notes.c.id)).scalars()) == ["after", "kept"]


def test_a_service_without_an_outbox_refuses_to_publish(engine: Engine) -> None:
    class Silent(SqlUnitOfWork):
        def __init__(self, engine: Engine) -> None:
            super().__init__(engine, None, processed)

    with Silent(engine) as uow:
        assert isinstance(uow.outbox, NoOutbox)
        with pytest.raises(RuntimeError, match="publishes no events"):
            uow.outbox.add("campaigns.events", "c", EVENT)
