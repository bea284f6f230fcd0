"""The ledger service's unit of work: one transaction on its database, with the repositories
of campaigns (their totals, price periods and milestones), gifts, the journal and the
programmes of difts (their funds, bookings and allocations), its outbox
and the ids of the events it processed (services/shared/unit_of_work.py).

A poll's confirmed gifts are booked as a set (`batch`): on the same transaction, repositories
that read what the gifts need once and write what they did in a few statements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from services.shared.envelope import CloudEvent
from services.shared.unit_of_work import BufferedOutbox, SqlUnitOfWork

from . import store


class LedgerUnitOfWork(SqlUnitOfWork):
    """One transaction on the ledger database."""

    campaigns: store.Campaigns
    gifts: store.Gifts
    journal: store.Journal
    programmes: store.Programmes

    repositories = {
        "campaigns": store.Campaigns,
        "gifts": store.Gifts,
        "journal": store.Journal,
        "programmes": store.Programmes,
    }

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, store.outbox, store.processed)

    @contextmanager
    def batch(self, events: Sequence[CloudEvent]) -> Iterator[GiftBatch]:
        """The confirmed gifts `events` booked as a set, written when the block ends normally
        (nothing is written if it raises: the consumer then rolls back)."""
        batch = GiftBatch(self.connection, events)
        yield batch
        batch.flush()


class GiftBatch:
    """What handlers.donation_succeeded sees of a unit of work when a poll's gifts are booked
    as a set: the batch repositories of store.batch and an outbox written in one INSERT."""

    def __init__(self, conn: Connection, events: Sequence[CloudEvent]) -> None:
        self.campaigns = store.BatchCampaigns(conn)
        self.gifts = store.BatchGifts(conn)
        self.journal = store.BatchJournal(conn)
        # Programme events are applied each on its own, after a flush; a gift never uses it.
        self.programmes = store.Programmes(conn)
        self.outbox = BufferedOutbox(conn, store.outbox)
        data = [event.data for event in events]
        self.campaigns.load({gift["campaign_id"] for gift in data})
        self.journal.load(
            {gift["donation_id"] for gift in data},
            {gift["charge_id"] for gift in data if gift.get("charge_id")},
        )

    def flush(self) -> None:
        """Write what the set's handlers did (before an event applied on its own, and at the
        end), in the order a foreign key needs, the outbox last."""
        self.journal.flush()
        self.gifts.flush()
        self.campaigns.flush()
        self.outbox.flush()
