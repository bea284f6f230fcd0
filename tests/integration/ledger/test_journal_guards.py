"""The database itself guards the journal: no entry or line is ever updated or deleted (on
SQLite and PostgreSQL alike), and on PostgreSQL an entry whose lines do not sum to zero cannot
be committed, whoever writes it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import IntegrityError

from services.ledger import store, views
from services.ledger.domain import EntryReferences, donation_entry
from services.shared.money import Money
from tests.integration.ledger.conftest import migrated

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The ledger's schema on either database (the triggers differ between the two)."""
    sqlite = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = migrated(
        sqlite if request.param == "sqlite" else request.getfixturevalue("database_url")
    )
    yield engine
    engine.dispose()


def posted(engine: Engine) -> int:
    entry = donation_entry("c-1", Money(2700, "EUR"), datetime(2026, 1, 15, tzinfo=UTC), "gift")
    with engine.begin() as conn:
        return store.Journal(conn).post(entry, EntryReferences("e-1", "c-1"))


def test_journal_entries_and_lines_cannot_be_updated_or_deleted(any_engine: Engine) -> None:
    entry_id = posted(any_engine)

    for statement in (
        update(store.journal_lines).values(amount=1),
        delete(store.journal_lines),
        update(store.journal_entries).values(description="edited"),
        delete(store.journal_entries).where(store.journal_entries.c.id == entry_id),
        delete(store.journal_entries),
    ):
        with pytest.raises(IntegrityError, match="append-only"), any_engine.begin() as conn:
            conn.execute(statement)
    with any_engine.connect() as conn:
        balances = {row["account"]: row["balance"] for row in views.trial_balance(conn)["accounts"]}
    assert balances == {"assets:stripe-clearing": 2700, "funds:campaign:c-1": -2700}


def test_an_unbalanced_entry_cannot_be_committed(engine: Engine) -> None:
    entry_id = posted(engine)

    with pytest.raises(IntegrityError, match="does not balance"), engine.begin() as conn:
        conn.execute(
            store.journal_lines.insert().values(
                entry_id=entry_id, account="assets:bank", currency="EUR", amount=1
            )
        )
