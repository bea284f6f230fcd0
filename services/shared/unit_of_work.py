"""The unit of work: the one database transaction each entrypoint (an HTTP request, a Kafka
batch, a worker's round, a command) opens. It holds the service's repositories, its outbox and
the ids of the events it processed, all on that transaction: a state change, the events it
publishes and the id of the event that caused it commit together, or not at all.

A service subclasses SqlUnitOfWork and builds its repositories in `bind`; handlers only see the
attributes (any object with the same ones will do, as the unit tests' fakes do).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Select,
    Table,
    Text,
    bindparam,
    cast,
    column,
    func,
    select,
)

from .db import dialect_insert, insert_if_absent, is_postgres
from .envelope import CloudEvent
from .events import dump_data
from .outbox import add_to_outbox

# Rows one multi-row INSERT carries at most (SQLite binds at most 32766 parameters).
ROWS_PER_INSERT = 500


class Outbox(Protocol):
    """Where a handler puts the events its change publishes."""

    def add(self, topic: str, key: str, event: CloudEvent) -> None:
        """Queue `event` for `topic`, keyed by `key` (a campaign id, say)."""


class ProcessedEvents(Protocol):
    """The ids of the events this service applied (the idempotent consumer's memory)."""

    def claim(self, event: CloudEvent) -> bool:
        """Record the event's id; False if it was there already."""

    def seen(self, event_id: str) -> bool:
        """Whether the event's id is recorded."""


def _has_event(conn: Connection, table: Table, event_id: str) -> bool:
    found = conn.execute(select(table.c.event_id).where(table.c.event_id == event_id)).first()
    return found is not None


class SqlOutbox:
    """The outbox table, on the unit of work's transaction."""

    def __init__(self, conn: Connection, table: Table) -> None:
        self.conn = conn
        self.table = table

    def add(self, topic: str, key: str, event: CloudEvent) -> None:
        """Queue `event` for `topic`, keyed by `key`, in this transaction."""
        add_to_outbox(self.conn, self.table, topic, key, event)

    def has(self, event_id: str) -> bool:
        """Whether an event with this id was ever queued."""
        return _has_event(self.conn, self.table, event_id)


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows (all with the same keys) in one statement: on PostgreSQL as one JSON
    document (`as_recordset`), on SQLite with one executemany (sqlite3's own loop)."""
    if not rows:
        return
    if is_postgres(conn):
        conn.execute(table.insert().from_select(list(rows[0]), as_recordset(table, rows)))
    else:
        conn.execute(table.insert(), list(rows))


def as_recordset(table: Table, rows: Sequence[Mapping[str, Any]]) -> Select[Any]:
    """PostgreSQL: SELECT the rows (all with the same keys, columns of `table`) from one JSON
    parameter through json_to_recordset. A short statement, prepared once, with one parameter
    whatever the number of rows: measured faster than psycopg's executemany (a statement a
    row) or multi-row VALUES (a new statement text for every number of rows)."""
    names = list(rows[0])
    document = json.dumps([dict(row) for row in rows], default=_json_moment)
    recordset = (
        func.json_to_recordset(cast(bindparam("rows", document, type_=Text), JSON))
        .table_valued(*(column(name, table.c[name].type) for name in names))
        .render_derived(name="rows", with_types=True)
    )
    return select(*(recordset.c[name] for name in names))


def _json_moment(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value insert_rows knows")


class BufferedOutbox:
    """An outbox that holds the events queued on it and writes them, in the order they were
    queued, in one multi-row INSERT when flushed (a batch of events applied as a set)."""

    def __init__(self, conn: Connection, table: Table) -> None:
        self.conn = conn
        self.table = table
        self._rows: list[dict[str, Any]] = []

    def add(self, topic: str, key: str, event: CloudEvent) -> None:
        """Queue `event` for `topic`, keyed by `key`; its data is checked against its schema
        now, as SqlOutbox.add does."""
        dump_data(event.type, event.data)
        self._rows.append(
            {
                "event_id": event.id,
                "event_type": event.type,
                "topic": topic,
                "key": key,
                "payload": event.to_json(),
                "created_at": datetime.now(UTC),
            }
        )

    def flush(self) -> None:
        """Write what was queued since the last flush."""
        rows, self._rows = self._rows, []
        insert_rows(self.conn, self.table, rows)


class SqlProcessedEvents:
    """The processed-event ids, on the unit of work's transaction."""

    def __init__(self, conn: Connection, table: Table) -> None:
        self.conn = conn
        self.table = table

    def claim(self, event: CloudEvent) -> bool:
        """Record the event id; False if it was already there (a redelivery or a replay)."""
        row = {"event_id": event.id, "event_type": event.type, "processed_at": datetime.now(UTC)}
        return insert_if_absent(self.conn, self.table, row, key="event_id")

    def claim_all(self, events: Sequence[CloudEvent]) -> set[str]:
        """Record many event ids at once, in one INSERT ... ON CONFLICT DO NOTHING RETURNING
        (on SQLite, one per 500); return the ids recorded now, the others were there
        already. The caller passes each id once."""
        if not events:
            return set()
        now = datetime.now(UTC)
        rows = [{"event_id": e.id, "event_type": e.type, "processed_at": now} for e in events]
        insert = dialect_insert(self.conn, self.table)
        if is_postgres(self.conn):
            statements = [insert.from_select(list(rows[0]), as_recordset(self.table, rows))]
        else:
            statements = [
                insert.values(rows[start : start + ROWS_PER_INSERT])
                for start in range(0, len(rows), ROWS_PER_INSERT)
            ]
        claimed: set[str] = set()
        for statement in statements:
            recording = statement.on_conflict_do_nothing(index_elements=["event_id"]).returning(
                self.table.c.event_id
            )
            claimed.update(self.conn.execute(recording).scalars())
        return claimed

    def seen(self, event_id: str) -> bool:
        """Whether the event id is recorded."""
        return _has_event(self.conn, self.table, event_id)


class NoOutbox:
    """The outbox of a service that publishes no events."""

    def add(self, topic: str, key: str, event: CloudEvent) -> None:
        """Refuse: nothing of this service is meant to be published."""
        raise RuntimeError(f"this service publishes no events ({event.type} to {topic})")


class SqlUnitOfWork:
    """One transaction on a service's database: entered, it opens a connection and begins;
    left normally it commits, left by an exception it rolls back. Not reentrant: open one per
    request, batch or round."""

    outbox: SqlOutbox | NoOutbox
    processed: SqlProcessedEvents
    # The service's repositories by attribute name, each built on the transaction's
    # connection when the unit of work is entered.
    repositories: ClassVar[Mapping[str, Callable[[Connection], object]]] = {}

    def __init__(self, engine: Engine, outbox_table: Table | None, processed_table: Table) -> None:
        self.engine = engine
        self._outbox_table = outbox_table
        self._processed_table = processed_table
        self._conn: Connection | None = None

    def __enter__(self) -> Self:
        conn = self.engine.connect()
        conn.begin()
        self._conn = conn
        self.outbox = (
            SqlOutbox(conn, self._outbox_table) if self._outbox_table is not None else NoOutbox()
        )
        self.processed = SqlProcessedEvents(conn, self._processed_table)
        self.bind(conn)
        return self

    def bind(self, conn: Connection) -> None:
        """Build the service's repositories on the transaction's connection."""
        for name, repository in self.repositories.items():
            setattr(self, name, repository(conn))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        assert conn is not None, "the unit of work was not entered"
        try:
            if exc_type is None:
                conn.commit()
            else:
                conn.rollback()
        finally:
            conn.close()

    def savepoint(self) -> AbstractContextManager[Any]:
        """A nested transaction: what happens inside it is undone alone if it raises."""
        assert self._conn is not None, "the unit of work was not entered"
        return self._conn.begin_nested()

    def batch(self, events: Sequence[CloudEvent]) -> AbstractContextManager[Any]:
        """What the handlers of `events` (claimed already, applied one after the other as a
        set) run on. A service may answer with repositories that read what the events need
        once and hold their writes back until `flush()` or the block's normal end (written in
        a few statements); by default, this unit of work itself."""
        return nullcontext(self)

    def flush(self) -> None:
        """Write what a batch holds back; this unit of work holds nothing back."""

    @property
    def connection(self) -> Connection:
        """The transaction's connection, for the service's repositories."""
        assert self._conn is not None, "the unit of work was not entered"
        return self._conn
