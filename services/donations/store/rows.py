"""What every repository of the donations store does with rows: find one by id (with a row
lock when asked), read a row as the domain's record of the same field names, and write an
entity's fields as the columns of the same names."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, select

from services.shared.db import as_utc
from services.shared.money import Money

Record = TypeVar("Record")


def by_id(conn: Connection, table: Table, key: str, lock: bool = False) -> Any | None:
    """The row of `table` with this id; `lock` holds it until the transaction ends (SELECT ...
    FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers)."""
    query = select(table).where(table.c.id == key)
    return conn.execute(query.with_for_update() if lock else query).first()


def record(row: Any, kind: type[Record], **read: Any) -> Record:
    """A row as the domain's `kind`: each field from the column of its name (a stored moment
    as UTC), but those given in `read`."""
    stored = row._mapping
    names = [field.name for field in fields(kind)]  # type: ignore[arg-type]
    values = {name: stored[name] for name in names if name not in read}
    moments = {name: as_utc(value) for name, value in values.items() if isinstance(value, datetime)}
    return kind(**{**values, **moments, **read})


def columns(entity: Any, *names: str) -> dict[str, Any]:
    """An entity's fields (`names`, else all) as the columns of the same names keep them:
    money in minor units, states by their value."""
    chosen = names or tuple(field.name for field in fields(entity))

    def stored(value: Any) -> Any:
        if isinstance(value, Money):
            return value.amount
        return value.value if isinstance(value, Enum) else value

    return {name: stored(getattr(entity, name)) for name in chosen}
