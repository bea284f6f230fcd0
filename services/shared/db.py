"""Database engines for SQLite (the embedded default) and PostgreSQL, and Alembic upgrades."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite


def service_metadata() -> MetaData:
    """A service's MetaData with named constraints, so Alembic names them the same on SQLite
    (batch mode) and PostgreSQL and can alter them later."""
    return MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and write-locking transactions so
    several processes (gunicorn workers, the worker process) can share one file safely."""
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # Durable across process crashes in WAL mode; only an OS crash can lose the last
            # commits. The embedded default is for local runs; production runs PostgreSQL.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            # Take the write lock up front: a deferred transaction that later writes can fail
            # with "database is locked" instead of waiting. A read-only connection
            # (`reading`) reads a snapshot without holding writers up.
            if connection.get_execution_options().get(READ_ONLY):
                connection.exec_driver_sql("BEGIN DEFERRED")
            else:
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        _watch_commits(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    engine = create_engine(url, **kwargs)
    _watch_commits(engine)
    return engine


def _watch_commits(engine: Engine) -> None:
    """The commit listeners of services/shared/wake.py, added before any thread uses the
    engine (SQLAlchemy's event lists must not change while another thread dispatches them)."""
    from .wake import watch_commits  # wake.py's listeners are on engines this module makes

    watch_commits(engine)


READ_ONLY = "difts_read_only"


def reading(engine: Engine) -> Connection:
    """A connection for reads only (a `with` block): on SQLite its transaction takes no write
    lock, so reads (the API's views, a relay's poll) never queue behind a writer or hold one
    up. Writing through it is a bug (SQLite may then answer "database is locked")."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def is_postgres(engine: Engine | Connection) -> bool:
    """True when the database is PostgreSQL."""
    return engine.dialect.name == "postgresql"


def dialect_insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that knows ON CONFLICT (DO NOTHING / DO UPDATE) on either database: the one
    place that chooses between PostgreSQL's and SQLite's."""
    return (postgresql if is_postgres(conn) else sqlite).insert(table)


def insert_if_absent(conn: Connection, table: Table, values: dict[str, Any], key: str) -> bool:
    """Insert a row unless one with the same `key` exists; True if this call inserted it.

    One statement (INSERT ... ON CONFLICT DO NOTHING RETURNING), so two processes racing on
    the same key cannot both win. RETURNING, because an INSERT's rowcount is not reported by
    every driver.
    """
    statement = (
        dialect_insert(conn, table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[key])
        .returning(table.c[key])
    )
    return conn.execute(statement).first() is not None


def as_utc(moment: datetime) -> datetime:
    """A stored moment as an aware UTC datetime: SQLite hands datetimes back without their
    zone, and every time difts stores is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def ping(engine: Engine) -> None:
    """Raise if the database does not answer."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def upgrade(database_url: str, migrations: Path) -> None:
    """Bring the database at `database_url` to the newest Alembic revision in `migrations`."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if database_url.startswith("sqlite"):
        database = database_url.split("///", 1)[-1]
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(config, "head")
