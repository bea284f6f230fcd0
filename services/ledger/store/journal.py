"""The journal, on the unit of work's transaction: balanced entries and their lines (appended,
never changed), the closed periods, and the balance transactions each payout settled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select

from services.shared.db import as_utc, dialect_insert, insert_if_absent
from services.shared.money import Money

from ..domain import (
    BANK,
    STRIPE_CLEARING,
    BalanceQuery,
    EntryKind,
    EntryReferences,
    JournalEntry,
    JournalLine,
    LedgerMovement,
    PostedEntry,
    posting_date,
)
from .tables import closed_periods, journal_entries, journal_lines, payout_items


class Journal:
    """The journal repository."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def post(self, entry: JournalEntry, about: EntryReferences) -> int:
        """Append a balanced entry and its lines; return the entry's id. An entry dated in a
        closed period is posted at the start of the next open one, keeping its date."""
        effective_at, original = posting_date(as_utc(entry.effective_at), self.closed_months())
        entry_id: int = self.conn.execute(
            journal_entries.insert()
            .values(
                # The references are the entry's columns of the same names.
                **asdict(about),
                kind=entry.kind.value,
                description=entry.description,
                effective_at=effective_at,
                original_effective_at=original,
                created_at=datetime.now(UTC),
            )
            .returning(journal_entries.c.id)
        ).scalar_one()
        self.conn.execute(
            journal_lines.insert(),
            [
                {
                    "entry_id": entry_id,
                    "account": line.account,
                    "currency": line.amount.currency,
                    "amount": line.amount.amount,
                }
                for line in entry.lines
            ],
        )
        return entry_id

    def entry_of(self, kinds: Sequence[EntryKind], stripe_object_id: str) -> PostedEntry | None:
        """The entry of one of `kinds` that booked a Stripe object, if any."""
        row = self.conn.execute(
            select(journal_entries).where(
                journal_entries.c.kind.in_([kind.value for kind in kinds]),
                journal_entries.c.stripe_object_id == stripe_object_id,
            )
        ).first()
        if row is None:
            return None
        return PostedEntry(row.id, row.kind, row.stripe_object_id, row.charge_id)

    def has_gift(self, donation_id: str) -> bool:
        """Whether a donation entry books this donation already."""
        found = self.conn.execute(
            select(journal_entries.c.id).where(
                journal_entries.c.kind == EntryKind.DONATION.value,
                journal_entries.c.donation_id == donation_id,
            )
        ).first()
        return found is not None

    def lines_of(self, entry_id: int) -> list[JournalLine]:
        """The lines of one entry, as they were posted."""
        rows = self.conn.execute(
            select(journal_lines)
            .where(journal_lines.c.entry_id == entry_id)
            .order_by(journal_lines.c.id)
        )
        return [JournalLine(row.account, Money(int(row.amount), row.currency)) for row in rows]

    # --- periods and payouts ------------------------------------------------------------------

    def closed_months(self) -> set[str]:
        """The closed periods ("YYYY-MM")."""
        return set(self.conn.execute(select(closed_periods.c.month)).scalars())

    def close(self, month: str, closed_by: str) -> bool:
        """Close a month to new postings; False if it was closed already."""
        row = {"month": month, "closed_at": datetime.now(UTC), "closed_by": closed_by}
        return insert_if_absent(self.conn, closed_periods, row, "month")

    def record_payout_items(self, payout_id: str, balance_transaction_ids: list[str]) -> None:
        """Remember which balance transactions a payout settled."""
        for btx in balance_transaction_ids:
            self.conn.execute(
                dialect_insert(self.conn, payout_items)
                .values(payout_id=payout_id, balance_transaction_id=btx)
                .on_conflict_do_nothing()
            )

    # --- what reconciliation reads --------------------------------------------------------------

    def clearing_movements(
        self, which: BalanceQuery | None = None, referencing: set[str] | None = None
    ) -> list[LedgerMovement]:
        """The entries that moved Stripe clearing, oldest first: of a period (by effective
        date, or the original date of a late entry) or settled by a payout (its balance
        transactions), as `which` says; or referencing some Stripe ids (balance transactions
        or objects)."""
        which = which or BalanceQuery()
        net = func.sum(journal_lines.c.amount).label("net")
        statement = (
            select(
                journal_entries.c.id,
                journal_entries.c.kind,
                journal_entries.c.stripe_object_id,
                journal_entries.c.balance_transaction_id,
                journal_entries.c.effective_at,
                journal_entries.c.original_effective_at,
                journal_lines.c.currency,
                net,
            )
            .join(journal_lines, journal_lines.c.entry_id == journal_entries.c.id)
            .where(journal_lines.c.account == STRIPE_CLEARING)
            .group_by(journal_entries.c.id, journal_lines.c.currency)
            .order_by(journal_entries.c.effective_at, journal_entries.c.id)
        )
        dated = func.coalesce(
            journal_entries.c.original_effective_at, journal_entries.c.effective_at
        )
        if which.since is not None:
            statement = statement.where(dated >= as_utc(which.since))
        if which.until is not None:
            statement = statement.where(dated < as_utc(which.until))
        if which.payout_id is not None:
            settled = select(payout_items.c.balance_transaction_id).where(
                payout_items.c.payout_id == which.payout_id
            )
            statement = statement.where(
                journal_entries.c.balance_transaction_id.in_(settled),
                journal_entries.c.kind != EntryKind.PAYOUT.value,
            )
        if referencing is not None:
            ids = sorted(referencing)
            statement = statement.where(
                journal_entries.c.balance_transaction_id.in_(ids)
                | journal_entries.c.stripe_object_id.in_(ids)
            )
        return [
            LedgerMovement(
                entry_id=row.id,
                kind=row.kind,
                stripe_object_id=row.stripe_object_id,
                balance_transaction_id=row.balance_transaction_id,
                currency=row.currency,
                net=int(row.net),
                effective_at=as_utc(row.original_effective_at or row.effective_at),
            )
            for row in self.conn.execute(statement)
        ]

    def booked_to_bank(self, payout_id: str) -> int:
        """What the ledger booked to the bank for one payout (minor units)."""
        booked = self.conn.execute(
            select(func.coalesce(func.sum(journal_lines.c.amount), 0))
            .join(journal_entries, journal_entries.c.id == journal_lines.c.entry_id)
            .where(
                journal_entries.c.kind == EntryKind.PAYOUT.value,
                journal_entries.c.stripe_object_id == payout_id,
                journal_lines.c.account == BANK,
            )
        ).scalar_one()
        return int(booked)
