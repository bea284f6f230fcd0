"""What every repository of the donations store does with rows: find one by id (with a row
lock when asked), and read the moments it stored as UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select

from services.shared.db import as_utc


def by_id(conn: Connection, table: Table, key: str, lock: bool = False) -> Any | None:
    """The row of `table` with this id; `lock` holds it until the transaction ends (SELECT ...
    FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers)."""
    query = select(table).where(table.c.id == key)
    return conn.execute(query.with_for_update() if lock else query).first()


def moment(stored: datetime | None) -> datetime | None:
    """A stored moment, if any, as an aware UTC datetime."""
    return as_utc(stored) if stored is not None else None
