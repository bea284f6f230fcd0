"""PostgreSQL itself guards the journal: no entry or line is ever updated or deleted, and an
entry whose lines do not sum to zero cannot be committed, whoever writes it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import IntegrityError

from services.ledger import store
from services.ledger.__main__ import MIGRATIONS
from services.ledger.domain import donation_entry
from services.shared.db import make_engine, upgrade
from services.shared.money import Money

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url, MIGRATIONS)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def posted(engine: Engine) -> int:
    entry = donation_entry("c-1", Money(2700, "EUR"), datetime(2026, 1, 15, tzinfo=UTC), "gift")
    with engine.begin() as conn:
        return store.post_entry(conn, entry, event_id="e-1", campaign_id="c-1")


def test_journal_entries_and_lines_cannot_be_updated_or_deleted(engine: Engine) -> None:
    entry_id = posted(engine)

    for statement in (
        update(store.journal_lines).values(amount=1),
        delete(store.journal_lines),
        update(store.journal_entries).values(description="edited"),
        delete(store.journal_entries).where(store.journal_entries.c.id == entry_id),
    ):
        with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)


def test_an_unbalanced_entry_cannot_be_committed(engine: Engine) -> None:
    entry_id = posted(engine)

    with pytest.raises(IntegrityError, match="does not balance"), engine.begin() as conn:
        conn.execute(
            store.journal_lines.insert().values(
                entry_id=entry_id, account="assets:bank", currency="EUR", amount=1
            )
        )
