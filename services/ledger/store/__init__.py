"""The ledger's database: its tables (tables.py) and the repositories the unit of work builds
on its transaction (campaigns.py, gifts.py, journal.py, programmes.py; batch.py: theirs for a
poll's gifts booked as a set). The only rooms with SQL that writes; views.py holds the read
queries of the API and the reports. Works on SQLite and PostgreSQL."""

from .batch import BatchCampaigns, BatchGifts, BatchJournal
from .campaigns import Campaigns
from .gifts import Gifts
from .journal import Journal
from .programmes import Programmes
from .tables import (
    campaign_totals,
    campaigns,
    closed_periods,
    dift_allocations,
    gifts,
    journal_entries,
    journal_lines,
    meal_periods,
    metadata,
    milestones_reached,
    outbox,
    payout_items,
    processed,
    programme_movements,
    programmes,
)

__all__ = [
    "BatchCampaigns",
    "BatchGifts",
    "BatchJournal",
    "Campaigns",
    "Gifts",
    "Journal",
    "Programmes",
    "campaign_totals",
    "campaigns",
    "closed_periods",
    "dift_allocations",
    "gifts",
    "journal_entries",
    "journal_lines",
    "meal_periods",
    "metadata",
    "milestones_reached",
    "outbox",
    "payout_items",
    "processed",
    "programme_movements",
    "programmes",
]
