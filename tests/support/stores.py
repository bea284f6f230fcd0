"""One store contract, several stores: the unit tests' in-memory fake, SQLite and PostgreSQL
(as the eventsourcing library runs one recorder suite against each database). A contract
suite's fixture, parametrized over STORES, yields from `units_of_work`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from services.shared.db import make_engine, upgrade

STORES = ["fake", "sqlite", "postgresql"]
OpenUnitOfWork = Callable[[], contextlib.AbstractContextManager[Any]]


def units_of_work(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    migrations: Path,
    on_database: Callable[[Engine], Any],
    fake: Callable[[], Any],
) -> Iterator[OpenUnitOfWork]:
    """What opens a unit of work (a transaction, committed on leaving) on the store this test
    is parametrized with: one fake for the whole test, or a freshly migrated database."""
    if request.param == "fake":
        kept = fake()
        yield lambda: kept
        return
    url = (
        f"sqlite:///{tmp_path / 'store.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("database_url")
    )
    upgrade(url, migrations)
    engine = make_engine(url)
    yield lambda: on_database(engine)
    engine.dispose()
