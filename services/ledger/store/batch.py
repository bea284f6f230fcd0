"""The repositories of a set of gifts booked together (the consumer's set path, one poll): they
read what the gifts need once for the whole set, answer the handler from memory, and write
what it did in a few statements when flushed (multi-row inserts, one update per campaign).

They answer what handlers.donation_succeeded asks; every other handler runs on the unit of
work itself, after a flush (which also forgets what was read: the other handler may change
it). Every method not overridden here reads or writes the database directly."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, text, update

from services.shared.db import as_utc, dialect_insert, is_postgres
from services.shared.money import Money
from services.shared.unit_of_work import insert_rows

from ..domain import (
    BookedGift,
    Campaign,
    CampaignTotals,
    EntryKind,
    EntryReferences,
    JournalEntry,
    PostedEntry,
    PricePeriod,
    posting_date,
    with_eligible,
)
from .campaigns import Campaigns, _campaign, _totals
from .gifts import Gifts, gift_row
from .journal import Journal
from .tables import (
    campaign_totals,
    campaigns,
    gifts,
    journal_entries,
    journal_lines,
    meal_periods,
    milestones_reached,
)


class BatchCampaigns(Campaigns):
    """Campaigns read once per set (their totals locked, in campaign order), their totals,
    eligible amounts and milestones written once per campaign when flushed."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self._forget()

    def _forget(self) -> None:
        self._campaigns: dict[str, Campaign | None] = {}
        self._totals: dict[str, CampaignTotals] = {}
        self._saved: set[str] = set()
        self._periods: dict[str, list[PricePeriod]] = {}
        self._eligible: dict[tuple[str, datetime], int] = defaultdict(int)
        self._milestones: dict[str, set[str]] = {}
        self._reached: list[dict[str, Any]] = []

    def load(self, campaign_ids: Collection[str]) -> None:
        """Read the campaigns, their totals (locked), price periods and milestones reached,
        one statement each for all of them. Totals are locked in campaign order, so two
        sets of the same campaigns never wait on each other in a cycle."""
        ids = sorted(set(campaign_ids) - set(self._campaigns))
        if not ids:
            return
        rows = self.conn.execute(select(campaigns).where(campaigns.c.campaign_id.in_(ids)))
        self._campaigns.update(dict.fromkeys(ids))
        self._campaigns.update({row.campaign_id: _campaign(row) for row in rows})
        totals = self.conn.execute(
            select(campaign_totals)
            .where(campaign_totals.c.campaign_id.in_(ids))
            .order_by(campaign_totals.c.campaign_id)
            .with_for_update()
        )
        self._totals.update({row.campaign_id: _totals(row) for row in totals})
        periods = self.conn.execute(
            select(meal_periods, campaigns.c.currency)
            .join(campaigns, campaigns.c.campaign_id == meal_periods.c.campaign_id)
            .where(meal_periods.c.campaign_id.in_(ids))
            .order_by(meal_periods.c.campaign_id, meal_periods.c.starts_at)
        )
        known = [campaign_id for campaign_id in ids if self._campaigns[campaign_id] is not None]
        self._periods.update({campaign_id: [] for campaign_id in known})
        for row in periods:
            self._periods[row.campaign_id].append(
                PricePeriod(
                    as_utc(row.starts_at),
                    Money(int(row.meal_price), row.currency),
                    Money(int(row.eligible), row.currency),
                )
            )
        reached = self.conn.execute(
            select(milestones_reached.c.campaign_id, milestones_reached.c.milestone).where(
                milestones_reached.c.campaign_id.in_(ids)
            )
        )
        self._milestones.update({campaign_id: set() for campaign_id in ids})
        for row in reached:
            self._milestones[row.campaign_id].add(row.milestone)

    def get(self, campaign_id: str) -> Campaign | None:
        """The projection of one campaign, or None."""
        if campaign_id not in self._campaigns:
            self._campaigns[campaign_id] = super().get(campaign_id)
        return self._campaigns[campaign_id]

    def _write(self, campaign: Campaign, overwrite: bool) -> None:
        # Written through (a campaign first heard of is rare); read again when asked.
        super()._write(campaign, overwrite)
        self._campaigns.pop(campaign.campaign_id, None)

    def lock_totals(self, campaign_id: str) -> CampaignTotals | None:
        """A campaign's totals as this set left them, locked."""
        if campaign_id not in self._totals:
            totals = super().lock_totals(campaign_id)
            if totals is None:
                return None
            self._totals[campaign_id] = totals
        return self._totals[campaign_id]

    def save_totals(self, campaign_id: str, totals: CampaignTotals) -> None:
        """Keep a campaign's new totals, written when flushed."""
        self._totals[campaign_id] = totals
        self._saved.add(campaign_id)

    def periods(self, campaign_id: str) -> list[PricePeriod]:
        """A campaign's price periods as this set left them, oldest first."""
        if campaign_id not in self._periods:
            periods = super().periods(campaign_id)
            for (changed, starts_at), amount in self._eligible.items():
                if changed == campaign_id and periods:
                    currency = periods[0].meal_price.currency
                    periods = with_eligible(periods, starts_at, Money(amount, currency))
            self._periods[campaign_id] = periods
        return list(self._periods[campaign_id])

    def start_period(self, campaign_id: str, starts_at: datetime, meal_price: int) -> None:
        """Start a price period (written through; the periods are read again when asked)."""
        super().start_period(campaign_id, starts_at, meal_price)
        self._periods.pop(campaign_id, None)

    def add_eligible(self, campaign_id: str, starts_at: datetime, change: Money) -> None:
        """Add `change` to the eligible amount of one period, written when flushed."""
        moment = as_utc(starts_at)
        self._periods[campaign_id] = with_eligible(self.periods(campaign_id), moment, change)
        self._eligible[(campaign_id, moment)] += change.amount

    def claim_milestones(self, campaign_id: str, names: Sequence[str], when: datetime) -> set[str]:
        """Record milestones as reached (written when flushed); return those reached for the
        first time now."""
        if not names:
            return set()
        if campaign_id not in self._milestones:
            found = self.conn.execute(
                select(milestones_reached.c.milestone).where(
                    milestones_reached.c.campaign_id == campaign_id
                )
            ).scalars()
            self._milestones[campaign_id] = set(found)
        reached = self._milestones[campaign_id]
        fresh = {name for name in names if name not in reached}
        reached.update(fresh)
        self._reached.extend(
            {"campaign_id": campaign_id, "milestone": name, "reached_at": when}
            for name in sorted(fresh)
        )
        return fresh

    def flush(self) -> None:
        """Write the eligible amounts, totals and milestones this set changed, then forget
        what was read."""
        changes = [
            {"b_campaign_id": campaign_id, "b_starts_at": starts_at, "b_change": change}
            for (campaign_id, starts_at), change in sorted(self._eligible.items())
            if change
        ]
        if changes:
            # One statement with many parameter sets (psycopg sends them in one pipeline).
            self.conn.execute(
                update(meal_periods)
                .where(
                    meal_periods.c.campaign_id == bindparam("b_campaign_id"),
                    meal_periods.c.starts_at == bindparam("b_starts_at"),
                )
                .values(eligible=meal_periods.c.eligible + bindparam("b_change")),
                changes,
            )
        if self._saved:
            now = datetime.now(UTC)
            columns = [column.name for column in fields(CampaignTotals)]
            self.conn.execute(
                update(campaign_totals)
                .where(campaign_totals.c.campaign_id == bindparam("b_campaign_id"))
                .values(
                    {column: bindparam(f"b_{column}") for column in columns} | {"updated_at": now}
                ),
                [
                    {
                        "b_campaign_id": campaign_id,
                        **{f"b_{k}": v for k, v in asdict(self._totals[campaign_id]).items()},
                    }
                    for campaign_id in sorted(self._saved)
                ],
            )
        if self._reached:
            claimed = self.conn.execute(
                dialect_insert(self.conn, milestones_reached)
                .values(self._reached)
                .on_conflict_do_nothing(index_elements=["campaign_id", "milestone"])
                .returning(milestones_reached.c.milestone)
            ).all()
            if len(claimed) != len(self._reached):
                # Another transaction reached one meanwhile: this set's events must be
                # applied again one by one (the consumer does, on any error of a set).
                raise RuntimeError("a milestone was reached by another transaction meanwhile")
        self._forget()


class BatchGifts(Gifts):
    """Booked gifts, the set's new ones inserted in one statement when flushed."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self._added: list[dict[str, Any]] = []

    def add(self, gift: BookedGift) -> None:
        """Remember a gift just booked (inserted when flushed)."""
        self._added.append(gift_row(gift))

    def flush(self) -> None:
        """Insert the gifts booked since the last flush."""
        added, self._added = self._added, []
        insert_rows(self.conn, gifts, added)


class BatchJournal(Journal):
    """The journal of a set: its entries numbered up front (PostgreSQL's sequence, or after
    the highest id under SQLite's write lock) and inserted with their lines, in two
    statements, when flushed."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self._entries: list[dict[str, Any]] = []
        self._lines: list[dict[str, Any]] = []
        # Entry ids taken from PostgreSQL's sequence and not used yet; SQLite's next id.
        self._ids: list[int] = []
        self._next: int | None = None
        self._closed: set[str] | None = None
        self._booked_gifts: dict[str, bool] = {}
        self._donation_entries: dict[str, PostedEntry | None] = {}
        self._expected = 1

    def load(self, donation_ids: Collection[str], charge_ids: Collection[str]) -> None:
        """Read which donations and charges are booked already, one statement each."""
        self._expected = max(1, len(donation_ids))
        fresh = sorted(set(donation_ids) - set(self._booked_gifts))
        if fresh:
            self._booked_gifts.update(dict.fromkeys(fresh, False))
            booked = self.conn.execute(
                select(journal_entries.c.donation_id).where(
                    journal_entries.c.kind == EntryKind.DONATION.value,
                    journal_entries.c.donation_id.in_(fresh),
                )
            ).scalars()
            self._booked_gifts.update(dict.fromkeys(booked, True))
        charges = sorted(set(charge_ids) - set(self._donation_entries))
        if charges:
            self._donation_entries.update(dict.fromkeys(charges))
            rows = self.conn.execute(
                select(journal_entries).where(
                    journal_entries.c.kind == EntryKind.DONATION.value,
                    journal_entries.c.stripe_object_id.in_(charges),
                )
            )
            for row in rows:
                self._donation_entries.setdefault(row.stripe_object_id, None)
                if self._donation_entries[row.stripe_object_id] is None:
                    self._donation_entries[row.stripe_object_id] = PostedEntry(
                        row.id, row.kind, row.stripe_object_id, row.charge_id
                    )

    def closed_months(self) -> set[str]:
        """The closed periods, read once per set."""
        if self._closed is None:
            self._closed = super().closed_months()
        return set(self._closed)

    def post(self, entry: JournalEntry, about: EntryReferences) -> int:
        """Number a balanced entry and keep it and its lines, inserted when flushed."""
        effective_at, original = posting_date(as_utc(entry.effective_at), self.closed_months())
        entry_id = self._next_id()
        self._entries.append(
            {
                "id": entry_id,
                **asdict(about),
                "kind": entry.kind.value,
                "description": entry.description,
                "effective_at": effective_at,
                "original_effective_at": original,
                "created_at": datetime.now(UTC),
            }
        )
        self._lines.extend(
            {
                "entry_id": entry_id,
                "account": line.account,
                "currency": line.amount.currency,
                "amount": line.amount.amount,
            }
            for line in entry.lines
        )
        if entry.kind is EntryKind.DONATION:
            if about.donation_id is not None:
                self._booked_gifts[about.donation_id] = True
            if about.stripe_object_id is not None:
                posted = PostedEntry(
                    entry_id, entry.kind.value, about.stripe_object_id, about.charge_id
                )
                if self._donation_entries.get(about.stripe_object_id) is None:
                    self._donation_entries[about.stripe_object_id] = posted
        return entry_id

    def _next_id(self) -> int:
        if not is_postgres(self.conn):
            if self._next is None:
                # The transaction holds SQLite's write lock (BEGIN IMMEDIATE): no one else
                # numbers entries meanwhile.
                highest = select(func.coalesce(func.max(journal_entries.c.id), 0))
                self._next = int(self.conn.execute(highest).scalar_one()) + 1
            entry_id, self._next = self._next, self._next + 1
            return entry_id
        if not self._ids:
            taken = self.conn.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('journal_entries', 'id')) "
                    "FROM generate_series(1, :n)"
                ),
                {"n": self._expected},
            )
            self._ids = list(taken.scalars())
        return self._ids.pop(0)

    def entry_of(self, kinds: Sequence[EntryKind], stripe_object_id: str) -> PostedEntry | None:
        """The entry of one of `kinds` that booked a Stripe object, this set's included."""
        for row in self._entries:
            if row["stripe_object_id"] == stripe_object_id and row["kind"] in {
                kind.value for kind in kinds
            }:
                return PostedEntry(row["id"], row["kind"], stripe_object_id, row["charge_id"])
        if list(kinds) == [EntryKind.DONATION] and stripe_object_id in self._donation_entries:
            return self._donation_entries[stripe_object_id]
        return super().entry_of(kinds, stripe_object_id)

    def has_gift(self, donation_id: str) -> bool:
        """Whether a donation entry books this donation already, this set's included."""
        if donation_id not in self._booked_gifts:
            self._booked_gifts[donation_id] = super().has_gift(donation_id)
        return self._booked_gifts[donation_id]

    def flush(self) -> None:
        """Insert the entries and lines kept since the last flush, and forget what was read
        (an entry numbered but not used leaves a gap, as a rolled-back transaction does)."""
        entries, self._entries = self._entries, []
        lines, self._lines = self._lines, []
        insert_rows(self.conn, journal_entries, entries)
        insert_rows(self.conn, journal_lines, lines)
        # An entry posted by another handler now takes the sequence's next id: ids kept for
        # later would number this set's next entries before it.
        self._ids = []
        self._next = None
        self._closed = None
        self._booked_gifts = {}
        self._donation_entries = {}
